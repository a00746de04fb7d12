"""The Azure ML backend against the fake Azure ML REST API with a ledger on Azurite (no tests here).

Why this platform for rollout fault tests: its endpoints keep traffic and refuse to delete a deployment that has
some, exactly like Azure, and its long operations finish when the test says (``fake.settle()``), so a blue/green
rollout takes milliseconds and every step boundary can be reached on purpose.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.backends.azureml import AzureMLBackend
from shared.backends.azureml.client import RetrySettings
from shared.backends.base import MODEL_TAG, RUN_TAG, EndpointInfo
from shared.ledger import Ledger, ModelRecord
from shared.reconcile.steps import CLEANUP, TRAFFIC
from shared.reconcile.tick import reconcile_model
from shared.runs.context import RunContext
from shared.settings import get_settings, reset_settings
from tests.fakes.aml_rest import FakeAzureML, FakeCredential


@pytest.fixture
def fake() -> FakeAzureML:
    world = FakeAzureML()
    world.seed_notebook_world()
    return world


def azure_context(fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch, **env: str) -> RunContext:
    """Settings from the test's environment (its own tables) on the fake workspace, plus ``env``."""
    for key, value in {
        "ML_BACKEND": "azureml",
        "AZURE_SUBSCRIPTION_ID": fake.subscription,
        "AZURE_RESOURCE_GROUP": fake.resource_group,
        "AZUREML_WORKSPACE_NAME": fake.workspace,
        **env,
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    settings = get_settings()
    backend = AzureMLBackend(
        settings,
        credential=FakeCredential(),
        transport=fake.transport(),
        retry=RetrySettings(total=3, backoff_factor=0, backoff_max=0),
    )
    return RunContext(settings, Ledger(settings), backend)


def register(ctx: RunContext, model: str, version: str) -> None:
    found = ctx.backend.register_model(
        f"job-{version}",
        ctx.settings.registered_model_name(model),
        {RUN_TAG: f"{model}-run{version}", MODEL_TAG: model},
    )
    assert found.version == version


def desire(ctx: RunContext, model: str, version: str) -> None:
    """What registration does: the version becomes the model's desired one (the record is created if new)."""

    def change(current: ModelRecord | None) -> ModelRecord:
        current = current or ModelRecord(model=model, state="deploying")
        current.desired_version, current.desired_run_id = version, f"{model}-run{version}"
        return current

    ctx.ledger.mutate(ModelRecord, "models", model, change)


def consistent(record: ModelRecord, info: EndpointInfo | None) -> str:
    """'' when the endpoint's traffic is what the record says serves, else what differs: all of it on the live
    deployment, or on what a rollout in flight recorded as moved (canary, switch)."""
    progress = record.deployment or {}
    if progress.get("step") == CLEANUP or (progress.get("step") == TRAFFIC and progress.get("canary_at")):
        expected = {k: v for k, v in (progress.get("traffic") or {}).items() if v}
    elif record.live_deployment and record.endpoint_name:
        expected = {record.live_deployment: 100}
    else:
        expected = {}
    actual = {k: v for k, v in (info.traffic if info else {}).items() if v}
    return "" if actual == expected else f"ledger expects {expected}, endpoint has {actual}"


def tick_checked(ctx: RunContext, fake: FakeAzureML, model: str) -> ModelRecord:
    """One reconcile tick (after the platform finished what it began), then the consistency check."""
    fake.settle()
    reconcile_model(ctx, model)
    record = ctx.ledger.get(ModelRecord, "models", model)
    assert record is not None
    info = ctx.backend.get_endpoint(record.endpoint_name or record.deployment.get("endpoint", ""))
    assert not consistent(record, info), consistent(record, info)
    return record


def drive_checked(
    ctx: RunContext, fake: FakeAzureML, model: str, done: Callable[[ModelRecord], bool], ticks: int = 20
) -> ModelRecord:
    for _ in range(ticks):
        record = tick_checked(ctx, fake, model)
        if done(record):
            return record
    raise AssertionError(f"model {model} did not converge in {ticks} ticks: {record.state} {record.deployment}")
