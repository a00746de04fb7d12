"""The reconciler's backstop on the real local backend, with every event lost: a run left ``queued`` (the process
died before submitting) is submitted by a tick, and a job whose event never arrives is polled and carried all
the way to live, exactly as its event would have. Then the idle sweeper puts the model to sleep (the reconciler
leaves it alone) and a wake redeploys its version onto a new endpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.backends.base import DeploymentPhase
from shared.ledger import ModelRecord
from shared.models import request_wake
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from shared.runs.create import create_run
from shared.sweeper import sweep
from shared.timeutil import utcnow
from tests.integration.test_runs_support import (
    chat,
    closed_port_url,
    live_on,
    make_context,
    model_of,
    prepare_dataset,
    run_of,
    shutdown_backend,
    wait_for,
)

pytestmark = pytest.mark.slow
MODEL = "quiet-bot"


def converge(ctx: RunContext, done: Callable[[ModelRecord], bool], what: str) -> ModelRecord:
    """Timer ticks (``reconcile_all``: backstop + every model) until ``done``."""

    def tick() -> ModelRecord | None:
        reconcile_all(ctx)
        record = model_of(ctx, MODEL)
        return record if done(record) else None

    return wait_for(tick, 180, what, interval=0.3)


def test_backstop_moves_runs_on_without_events(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Events go to a port nobody listens on; poll as soon as a run has been quiet for 0 minutes.
    ctx = make_context(
        monkeypatch, AUTOTUNE_HOST_URL=closed_port_url(), JOB_POLL_AFTER_MINUTES="0", ENDPOINT_IDLE_MINUTES="1"
    )
    try:
        dataset = prepare_dataset(ctx, MODEL, seed=21)
        run = create_run(ctx.ledger, dataset)  # gathered; nothing has moved it on yet
        assert run.state == "waiting"

        report = reconcile_all(ctx)
        assert report.runs[run.run_id] == "submitted"
        run = run_of(ctx, run)
        assert run.job_name

        wait_for(lambda: ctx.backend.get_job(run.job_name).state.terminal, 300, "the job to finish")
        report = reconcile_all(ctx)
        assert report.runs[run.run_id] == "poll: registered"
        assert run_of(ctx, run).registered_version == "1"

        model = converge(ctx, live_on("1"), "the model to go live from ticks alone")
        assert run_of(ctx, run).state == "live"
        assert chat(ctx, model.endpoint_name).strip()
        assert run.run_id not in reconcile_all(ctx).runs  # nothing left to do for it

        # Idle: the sweeper deletes the endpoint; the reconciler leaves a sleeping model alone.
        report = sweep(ctx.settings, ctx.ledger, ctx.backend, now=utcnow() + timedelta(hours=1))
        assert report.by_result("slept") == [model.endpoint_name]
        assert model_of(ctx, MODEL).state == "sleeping"
        assert reconcile_all(ctx).models[MODEL] == ["sleeping"]
        wait_for(lambda: ctx.backend.get_endpoint(model.endpoint_name) is None, 60, "the endpoint to be deleted")

        # Woken: the same version is deployed again on a fresh endpoint and serves.
        assert request_wake(ctx.settings, ctx.ledger, MODEL, "test")
        woken = converge(ctx, live_on("1"), "the woken model to be live again")
        assert woken.endpoint_name == model.endpoint_name and woken.live_deployment == "v1"
        assert ctx.backend.get_deployment(woken.endpoint_name, "v1").phase == DeploymentPhase.SUCCEEDED
        assert chat(ctx, woken.endpoint_name).strip()
        assert run_of(ctx, run).state == "live"
    finally:
        shutdown_backend(ctx)
