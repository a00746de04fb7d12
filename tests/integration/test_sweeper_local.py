"""The idle sweeper on the real local backend: real endpoints with real scoring-server processes.

One model trains for real (tiny) and goes live through its job's event and the reconciler; a second one is
deployed directly from the untrained tiny model and called at its endpoint, not through the gateway; a third
endpoint is not ours. The sweep deletes the idle endpoint (its processes end, its registered model stays),
keeps the one its callers use and never touches the foreign one; then a request through the gateway wakes the
sleeping model, the reconciler redeploys it, and the same request is served.

The clock is the real one, so ``ENDPOINT_IDLE_MINUTES`` is half a minute: the endpoints' own request times come
from the scoring servers (the reconciler's smoke test is one of them) and cannot be backdated.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import azure.functions as func
import pytest

from functions import models as model_routes
from localml.state import alive, read_json, update_json
from shared.backends.base import MANAGED_TAG, BackendError, ModelVersion
from shared.events import handle_event
from shared.ledger import ActivityRecord, ModelRecord
from shared.names import endpoint_name
from shared.runs.context import RunContext
from shared.runs.submit import start_run_for_dataset
from shared.settings import get_settings, reset_settings
from shared.sweeper import observe, sweep
from shared.timeutil import iso, utcnow
from tests.integration import test_gateway_handlers as gateway_handlers
from tests.integration import test_runs_support as support
from tests.integration.test_runs_support import chat, drive, job_events, live_on, model_of, prepare_dataset, wait_for

event_sink = support.event_sink  # fixtures
runs_ctx = support.runs_ctx
loop = gateway_handlers.loop

pytestmark = pytest.mark.slow

IDLE, BUSY, FOREIGN = "support-bot", "busy-bot", "someone-elses"
IDLE_SECONDS = 30
KEY = "test-key-1"


def hours_ago(hours: float) -> str:
    return iso(utcnow() - timedelta(hours=hours))


def processes(ctx: RunContext, endpoint: str) -> list[dict]:
    """The process records (router + one server per deployment) of a local endpoint, read before it goes."""
    folder = ctx.backend.layout.endpoint(endpoint)
    records = [read_json(folder / "router.json")]
    records += [read_json(p) for p in sorted(folder.glob("deployments/*/server.json"))]
    assert all(records), f"missing process records under {folder}"
    return records


def deploy_untrained(ctx: RunContext, endpoint: str, tmp: Path) -> None:
    """An endpoint serving the untrained tiny model, straight through the platform (no training needed)."""
    from localml.tinymodel import export_untrained

    folder = export_untrained(ctx.settings.local_state_dir, tmp / f"{endpoint}-model")
    ctx.backend.begin_endpoint(endpoint, {})
    ctx.backend.begin_deployment(endpoint, "v1", ModelVersion("autotune-untrained", "1", path=str(folder)), "cpu", 1)
    wait_for(lambda: ctx.backend.get_deployment(endpoint, "v1").phase.value == "succeeded", 180, f"{endpoint}/v1")
    ctx.backend.set_traffic(endpoint, {"v1": 100})


def use(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()


def gateway_chat(loop: asyncio.AbstractEventLoop, model: str) -> tuple[int, dict]:
    answer = gateway_handlers.chat(loop, {"model": model, "max_tokens": 8}, key=KEY)
    return answer.status, answer.json()


def model_view(model: str) -> dict:
    req = func.HttpRequest(method="GET", url=f"/api/models/{model}", body=b"", route_params={"model": model})
    return json.loads(model_routes.models_get.build().get_user_function()(req).get_body())


def test_idle_endpoint_sleeps_busy_one_stays_and_a_request_wakes_it(
    runs_ctx: RunContext, event_sink: support.EventSink, loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = runs_ctx
    idle_endpoint, busy_endpoint = endpoint_name(IDLE), endpoint_name(BUSY)
    use(monkeypatch, ENDPOINT_IDLE_MINUTES=str(IDLE_SECONDS / 60))

    # ---- a trained model, live through its job's event and the reconciler ---------------------------------
    run = start_run_for_dataset(ctx.ledger, prepare_dataset(ctx, IDLE, seed=1), ctx)
    for event in job_events(event_sink, run.job_name):
        handle_event(event, ctx, reconcile=False)
    drive(ctx, IDLE, live_on("1"))
    idle_since = time.monotonic()  # deployed and smoke-tested: the endpoint's last request
    ctx.ledger.upsert(ActivityRecord(model=IDLE, last_request_at=hours_ago(1.5)))  # last gateway call 90 min ago

    # ---- a model whose callers use its endpoint directly (no gateway activity at all) ---------------------
    deploy_untrained(ctx, busy_endpoint, tmp_path)
    ctx.ledger.create(
        ModelRecord(
            model=BUSY,
            state="live",
            desired_version="1",
            live_version="1",
            live_deployment="v1",
            endpoint_name=busy_endpoint,
            last_deployed_at=hours_ago(3),
            updated_at=hours_ago(3),
        )
    )

    # ---- an endpoint that is not ours ----------------------------------------------------------------------
    ctx.backend.begin_endpoint(FOREIGN, {})
    update_json(ctx.backend.layout.endpoint(FOREIGN) / "endpoint.json", tags={MANAGED_TAG: "false", "owner": "x"})
    foreign_router = read_json(ctx.backend.layout.endpoint(FOREIGN) / "router.json")

    idle_processes = processes(ctx, idle_endpoint)
    assert all(alive(record) for record in idle_processes)
    registered = ctx.settings.registered_model_name(IDLE)

    time.sleep(max(0.0, IDLE_SECONDS + 1 - (time.monotonic() - idle_since)))
    # A direct call (not through the gateway): only the endpoint itself knows about it.
    assert chat(ctx, busy_endpoint) is not None

    # ---- dry run: says what it would delete, deletes nothing -----------------------------------------------
    use(monkeypatch, IDLE_SWEEP_DRY_RUN="true")
    report = sweep(get_settings(), ctx.ledger, ctx.backend)
    assert report.dry_run and report.by_result("would_sleep") == [idle_endpoint]
    assert all(alive(record) for record in idle_processes) and model_of(ctx, IDLE).state == "live"
    use(monkeypatch, IDLE_SWEEP_DRY_RUN="false")

    # ---- the sweep -------------------------------------------------------------------------------------------
    assert FOREIGN not in [obs.endpoint.name for obs in observe(get_settings(), ctx.ledger, ctx.backend)]
    report = sweep(get_settings(), ctx.ledger, ctx.backend)
    outcomes = {outcome.endpoint: outcome for outcome in report.outcomes}
    assert set(outcomes) == {idle_endpoint, busy_endpoint}
    assert outcomes[idle_endpoint].result == "slept"
    assert (
        outcomes[idle_endpoint].reason.startswith("idle ") and "(no requests since " in outcomes[idle_endpoint].reason
    )
    assert outcomes[busy_endpoint].result == "kept" and "at the endpoint" in outcomes[busy_endpoint].reason

    assert ctx.backend.get_endpoint(idle_endpoint) is None
    wait_for(lambda: not any(alive(record) for record in idle_processes), 15, "the idle endpoint's processes to end")
    with pytest.raises(BackendError):
        chat(ctx, idle_endpoint)
    assert ctx.backend.get_model(registered, "1") is not None  # the registered model stays
    assert chat(ctx, busy_endpoint) is not None  # the busy one still serves
    assert alive(foreign_router) and ctx.backend.get_endpoint(FOREIGN) is not None

    asleep = model_view(IDLE)
    assert asleep["state"] == "sleeping" and asleep["endpoint"] is None
    assert asleep["live_version"] == "1" and asleep["desired_version"] == "1"
    assert asleep["sleep_reason"] == outcomes[idle_endpoint].reason and asleep["slept_at"]
    busy = model_view(BUSY)  # its only activity is what the endpoint itself saw
    assert busy["last_request_via_gateway"] is None
    assert busy["last_activity"] == busy["last_request_at_endpoint"] > busy["last_deployed_at"]
    assert busy["idle_at"] is not None

    # ---- a request wakes it; the reconciler redeploys; the same request is then served ---------------------
    status, body = gateway_chat(loop, IDLE)
    assert status == 503 and body["error"]["code"] == "model_waking"
    assert model_of(ctx, IDLE).state == "deploying"
    drive(ctx, IDLE, live_on("1"))
    assert model_of(ctx, IDLE).endpoint_name == idle_endpoint

    def served() -> dict | None:
        status, body = gateway_chat(loop, IDLE)
        return body if status == 200 else None

    answer = wait_for(served, 30, "the woken model to serve through the gateway", interval=1.0)
    assert answer["choices"][0]["message"]["content"].strip()

    # ---- freshly redeployed: the next sweep keeps it ---------------------------------------------------------
    kept = {o.endpoint: o for o in sweep(get_settings(), ctx.ledger, ctx.backend).outcomes}
    assert kept[idle_endpoint].result == "kept"
