"""A wake that fails leaves the model asleep and wakeable: the error is shown, requests are told when the next
try is (503 model_wake_failed + Retry-After) and wake it again after WAKE_RETRY_MINUTES (doubling), POST /wake
tries again at once, and a quota failure during a wake is retried by the reconciler without any request.

Two platforms, both real where it matters: the local backend (the wake fails because the version to redeploy is
not in its registry) through the real trigger functions; and the Azure ML backend against the fake Azure ML REST
API, which refuses the deployment with a real QuotaExceeded answer once, then lets it through.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import azure.functions as func
import pytest

from functions import models as model_routes
from shared.backends.base import MODEL_TAG, RUN_TAG
from shared.ledger import Ledger, ModelRecord
from shared.reconcile.tick import reconcile_all, reconcile_model
from shared.runs.context import RunContext
from shared.settings import get_settings, reset_settings
from shared.timeutil import iso, parse_iso, utcnow
from tests.fakes.aml_rest import FakeAzureML
from tests.integration import fake_azure_support
from tests.integration import test_gateway_handlers as gateway_handlers
from tests.integration.fake_azure_support import azure_context
from tests.integration.test_runs_support import shutdown_backend

fake = fake_azure_support.fake  # fixture
KEY = "test-key-1"


loop = gateway_handlers.loop  # fixture


def asleep(ledger: Ledger, model: str, version: str = "1") -> ModelRecord:
    """A model the sweeper put to sleep: its version served before, its endpoint was deleted."""
    return ledger.create(
        ModelRecord(
            model=model,
            state="sleeping",
            desired_version=version,
            desired_run_id=f"{model}-run{version}",
            live_version=version,
            live_run_id=f"{model}-run{version}",
            slept_at=iso(utcnow() - timedelta(hours=2)),
            sleep_reason="idle 61 min (no requests since deployment)",
            last_deployed_at=iso(utcnow() - timedelta(hours=3)),
        )
    )


def wake(model: str) -> tuple[int, dict]:
    req = func.HttpRequest(method="POST", url=f"/api/models/{model}/wake", body=b"", route_params={"model": model})
    response = model_routes.models_wake.build().get_user_function()(req)
    return response.status_code, json.loads(response.get_body())


def chat(loop: asyncio.AbstractEventLoop, model: str) -> tuple[int, dict, dict]:
    answer = gateway_handlers.chat(loop, {"model": model, "max_tokens": 8}, key=KEY)
    return answer.status, answer.json(), answer.headers


def settle(ctx: RunContext, model: str) -> ModelRecord:
    """Tick until the wake's rollout is over (no step in flight)."""
    for _ in range(20):
        reconcile_model(ctx, model)
        record = ctx.ledger.get(ModelRecord, "models", model)
        assert record is not None
        if record.state in ("sleeping", "live", "failed"):
            return record
    raise AssertionError(f"model {model} still {record.state} after 20 ticks: {record.deployment}")


def test_a_failed_wake_stays_wakeable_with_backoff(app_env, loop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAKE_RETRY_MINUTES", "10")
    reset_settings()
    settings = get_settings()
    ctx = RunContext(settings, Ledger(settings))
    asleep(ctx.ledger, "wake-bot")
    try:
        _fail_wake_and_retry(ctx, loop)
    finally:
        shutdown_backend(ctx)  # the endpoint routers the wakes started


def _fail_wake_and_retry(ctx: RunContext, loop: asyncio.AbstractEventLoop) -> None:

    status, body, _ = chat(loop, "wake-bot")
    assert status == 503 and body["error"]["code"] == "model_waking"
    failed = settle(ctx, "wake-bot")  # version 1 is not in this platform's registry: the redeployment fails

    assert failed.state == "sleeping", failed.error
    assert "registered model autotune-wake-bot version 1 was not found" in failed.error
    assert "the next request after" in failed.error and failed.wake_retry["failures"] == 1
    assert not failed.wake_retry["automatic"]
    retry_at = parse_iso(failed.wake_retry["at"])
    assert retry_at is not None and timedelta(minutes=9) < retry_at - utcnow() <= timedelta(minutes=10)
    assert failed.desired_version == "1" and not failed.deployment

    # Requests during the backoff are told why and when, and do not redeploy.
    status, body, headers = chat(loop, "wake-bot")
    assert status == 503 and body["error"]["code"] == "model_wake_failed", body
    assert "was not found" in body["error"]["message"] and 540 < int(headers["Retry-After"]) <= 600
    assert ctx.ledger.get(ModelRecord, "models", "wake-bot").state == "sleeping"

    # An operator's POST /wake tries again at once; it fails again, and the backoff doubles.
    status, view = wake("wake-bot")
    assert status == 202 and view["state"] == "deploying", view
    again = settle(ctx, "wake-bot")
    assert again.state == "sleeping" and again.wake_retry["failures"] == 2
    assert timedelta(minutes=19) < parse_iso(again.wake_retry["at"]) - utcnow() <= timedelta(minutes=20)
    status, view = wake("wake-bot")  # the model view shows the error and the retry time meanwhile
    assert status == 202 and view["wake_retry"]["failures"] == 2 and view["error"] is None
    settle(ctx, "wake-bot")

    # Once the backoff is over, the next request wakes it again.
    record = ctx.ledger.get(ModelRecord, "models", "wake-bot")
    record.wake_retry = {**record.wake_retry, "at": iso(utcnow() - timedelta(seconds=1))}
    ctx.ledger.save(record)
    status, body, _ = chat(loop, "wake-bot")
    assert status == 503 and body["error"]["code"] == "model_waking", body
    assert ctx.ledger.get(ModelRecord, "models", "wake-bot").state == "deploying"


# ------------------------------------------------------------------------- quota during a wake (Azure ML)
@pytest.fixture
def azure_ctx(app_env, fake: FakeAzureML, monkeypatch: pytest.MonkeyPatch) -> RunContext:
    return azure_context(fake, monkeypatch, WAKE_RETRY_MINUTES="5")


def test_a_quota_failure_during_a_wake_is_retried_without_a_request(
    azure_ctx: RunContext, fake: FakeAzureML, loop
) -> None:
    ctx, model = azure_ctx, "quota-bot"
    ctx.backend.register_model("job-1", "autotune-quota-bot", {RUN_TAG: "quota-bot-run1", MODEL_TAG: model})
    asleep(ctx.ledger, model)
    assert wake(model)[0] == 202
    fake.inject("PUT", "/deployments/v-1", 400, code="QuotaExceeded", message="Not enough quota available")

    def tick() -> ModelRecord:
        fake.settle()  # every long operation the platform began finishes (a deployment: 10-30 min in Azure)
        reconcile_all(ctx)
        return ctx.ledger.get(ModelRecord, "models", model)

    record = tick()
    for _ in range(5):
        if record.state != "deploying":
            break
        record = tick()
    assert record.state == "sleeping" and record.wake_retry["automatic"], record
    assert "quota" in record.wake_retry["error"].lower() and "the reconciler tries again after" in record.error
    assert tick().state == "sleeping"  # not before its time

    record.wake_retry = {**record.wake_retry, "at": iso(utcnow() - timedelta(seconds=1))}
    ctx.ledger.save(record)
    for _ in range(8):
        record = tick()
        if record.state == "live":
            break
    assert record.state == "live" and record.live_version == "1" and record.wake_retry == {}, record
    assert ctx.backend.get_endpoint(record.endpoint_name).traffic == {"v1": 100}
