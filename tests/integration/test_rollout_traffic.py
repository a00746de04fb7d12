"""Abandon and rollback decide from the endpoint's actual traffic, never abandon a deployment that serves, and a
step's save survives an unrelated ETag conflict, so the ledger and the endpoint agree after every tick.

On the Azure ML backend against the fake Azure ML REST API (it keeps traffic and refuses to delete a deployment
that has some, like Azure). The faults are injected at the crash point between a step's platform action and its
record (``shared.crashpoints``): the process "dies" there (an exception no handler catches), or another writer
changes the model record right there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared import crashpoints
from shared.backends.base import DeploymentPhase
from shared.ledger import ModelRecord
from shared.reconcile.steps import TRAFFIC
from shared.runs.context import RunContext
from tests.fakes.aml_rest import FakeAzureML
from tests.integration import fake_azure_support
from tests.integration.fake_azure_support import azure_context, desire, drive_checked, register, tick_checked

fake = fake_azure_support.fake  # fixture
MODEL = "traffic-bot"


class Died(BaseException):
    """The process dying at a crash point (BaseException: no ``except Exception`` in the app swallows it)."""


@pytest.fixture
def crash_at() -> Iterator[list[tuple[str, str]]]:
    """Crash points to die at, once each: append ``(point, when)``."""
    pending: list[tuple[str, str]] = []

    def hook(point: str, when: str, model: str) -> None:
        if (point, when) in pending:
            pending.remove((point, when))
            raise Died(f"{point}/{when}")

    previous = crashpoints.install(hook)
    yield pending
    crashpoints.install(previous)


def live_on(version: str):
    return lambda m: m.state == "live" and m.live_version == version and not m.deployment


def until_dead(ctx: RunContext, fake: FakeAzureML) -> None:
    with pytest.raises(Died):
        for _ in range(20):
            tick_checked(ctx, fake, MODEL)


def deployments(ctx: RunContext, record: ModelRecord) -> dict[str, DeploymentPhase]:
    info = ctx.backend.get_endpoint(record.endpoint_name)
    assert info is not None
    return {name: ctx.backend.get_deployment(info.name, name).phase for name in info.deployments}


def start(ctx: RunContext, fake: FakeAzureML) -> ModelRecord:
    for version in ("1", "2", "3"):
        register(ctx, MODEL, version)
    desire(ctx, MODEL, "1")
    return drive_checked(ctx, fake, MODEL, live_on("1"))


@pytest.mark.parametrize("canary", ["0", "30"])
def test_abandon_takes_back_traffic_the_ledger_never_heard_of(
    fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch, app_env, crash_at, canary: str
) -> None:
    ctx = azure_context(fake, monkeypatch, CANARY_PERCENT=canary)
    start(ctx, fake)
    desire(ctx, MODEL, "2")
    crash_at.append((TRAFFIC, crashpoints.BEFORE))  # v2 got traffic (all, or the canary share); not recorded
    until_dead(ctx, fake)
    record = ctx.ledger.get(ModelRecord, "models", MODEL)
    assert record.deployment["step"] == TRAFFIC and not record.deployment.get("canary_at")
    assert ctx.backend.get_endpoint(record.endpoint_name).traffic.get("v2")  # the endpoint moved on

    desire(ctx, MODEL, "3")  # a newer version: v2's rollout is abandoned on the next tick
    record = tick_checked(ctx, fake, MODEL)  # consistent: v1 has all the traffic back
    record = drive_checked(ctx, fake, MODEL, live_on("3"))
    fake.settle()
    assert deployments(ctx, record) == {"v3": DeploymentPhase.SUCCEEDED}
    assert ctx.backend.get_endpoint(record.endpoint_name).traffic == {"v3": 100}


def test_a_first_deployment_that_serves_is_finished_not_abandoned(
    fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch, app_env, crash_at
) -> None:
    ctx = azure_context(fake, monkeypatch)
    for version in ("1", "2"):
        register(ctx, MODEL, version)
    desire(ctx, MODEL, "1")
    crash_at.append((TRAFFIC, crashpoints.BEFORE))  # v1 takes all traffic; the ledger still says "traffic"
    until_dead(ctx, fake)
    desire(ctx, MODEL, "2")
    record = tick_checked(ctx, fake, MODEL)
    assert record.live_version == "1" or record.deployment.get("name") == "v1"  # v1 goes live first
    record = drive_checked(ctx, fake, MODEL, live_on("2"))
    fake.settle()
    assert deployments(ctx, record) == {"v2": DeploymentPhase.SUCCEEDED}


def test_rollback_takes_back_traffic_the_ledger_never_heard_of(
    fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch, app_env, crash_at
) -> None:
    ctx = azure_context(fake, monkeypatch)
    start(ctx, fake)
    desire(ctx, MODEL, "2")
    crash_at.append((TRAFFIC, crashpoints.BEFORE))
    until_dead(ctx, fake)
    # The switch is tried again and the platform refuses it for good (not a retryable error): rollback.
    fake.inject("PUT", "/onlineEndpoints/", 400, code="BadArgument", message="traffic update rejected", times=1)
    record = tick_checked(ctx, fake, MODEL)
    assert record.state == "live" and record.live_version == "1" and not record.deployment
    assert "traffic update rejected" in record.error
    fake.settle()
    assert ctx.backend.get_endpoint(record.endpoint_name).traffic == {"v1": 100}
    assert deployments(ctx, record).get("v2") in (None, DeploymentPhase.DELETING)


def test_a_step_is_recorded_over_an_unrelated_etag_conflict(
    fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch, app_env
) -> None:
    ctx = azure_context(fake, monkeypatch)
    start(ctx, fake)
    desire(ctx, MODEL, "2")
    changed: list[str] = []

    def newer_version_offered(point: str, when: str, model: str) -> None:
        if (point, when) == (TRAFFIC, crashpoints.BEFORE) and not changed:
            changed.append(point)
            desire(ctx, MODEL, "3")  # another worker registers v3 between the switch and its record

    previous = crashpoints.install(newer_version_offered)
    try:
        record = drive_checked(ctx, fake, MODEL, lambda m: bool(changed))  # consistent after every tick
    finally:
        crashpoints.install(previous)
    assert record.desired_version == "3"  # the other writer's change is kept
    record = drive_checked(ctx, fake, MODEL, live_on("3"))
    fake.settle()
    assert deployments(ctx, record) == {"v3": DeploymentPhase.SUCCEEDED}
