"""Garbage collection on the real local platform: each tick deletes a deployment on a managed endpoint that no
model record references, that has no traffic and that is older than ORPHAN_GRACE_MINUTES; a live deployment, a
referenced one, one with traffic, a young one and anything on an endpoint that is not ours stay."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from localml.state import update_json
from shared.backends.base import MANAGED_TAG, DeploymentPhase
from shared.reconcile.gc import collect_orphans
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from tests.integration import test_runs_support as support
from tests.integration.platform_support import leftover_deployment, live_model

event_sink = support.event_sink  # fixtures
runs_ctx = support.runs_ctx

MODEL, ENDPOINT = "gc-bot", "at-gc-bot"
GHOST = "at-ghost-bot"  # managed, but no model record owns it (its record was deleted)
FOREIGN = "someone-elses"


def phase(ctx: RunContext, endpoint: str, deployment: str) -> DeploymentPhase:
    return ctx.backend.get_deployment(endpoint, deployment).phase


def with_grace(ctx: RunContext, minutes: float) -> RunContext:
    return RunContext(dataclasses.replace(ctx.settings, orphan_grace_minutes=minutes), ctx.ledger, ctx.backend)


def test_a_tick_deletes_orphans_and_nothing_else(runs_ctx: RunContext, tmp_path: Path) -> None:
    ctx = runs_ctx
    for deployment in ("v1", "v3"):
        leftover_deployment(ctx, ENDPOINT, deployment, MODEL, tmp_path)
    live_model(ctx, MODEL, ENDPOINT, "v1")  # v3: left behind by a rollback whose delete failed
    for deployment in ("blue", "green"):
        leftover_deployment(ctx, GHOST, deployment, "ghost-bot", tmp_path)
    ctx.backend.set_traffic(GHOST, {"blue": 100})  # nobody references blue, but it serves
    leftover_deployment(ctx, FOREIGN, "blue", FOREIGN, tmp_path)
    folder = ctx.backend.layout.endpoint(FOREIGN)
    update_json(folder / "endpoint.json", tags={"owner": "someone else"})  # not tagged autotune-managed
    assert MANAGED_TAG not in ctx.backend.get_endpoint(FOREIGN).tags

    young = reconcile_all(with_grace(ctx, 60))
    kept = "kept: younger than ORPHAN_GRACE_MINUTES (60)"
    assert young.orphans == {f"{ENDPOINT}/v3": kept, f"{GHOST}/green": kept}
    assert phase(ctx, ENDPOINT, "v3") == DeploymentPhase.FAILED

    report = reconcile_all(with_grace(ctx, 0))
    assert report.orphans == {f"{ENDPOINT}/v3": "deleted", f"{GHOST}/green": "deleted"}
    assert phase(ctx, ENDPOINT, "v3") == DeploymentPhase.NOT_FOUND
    assert phase(ctx, GHOST, "green") == DeploymentPhase.NOT_FOUND
    assert phase(ctx, ENDPOINT, "v1") != DeploymentPhase.NOT_FOUND  # live
    assert phase(ctx, GHOST, "blue") != DeploymentPhase.NOT_FOUND  # has traffic
    assert phase(ctx, FOREIGN, "blue") != DeploymentPhase.NOT_FOUND  # not ours
    assert reconcile_all(with_grace(ctx, 0)).orphans == {}


def test_a_deployment_a_rollout_references_is_kept(runs_ctx: RunContext, tmp_path: Path) -> None:
    ctx = runs_ctx
    for deployment in ("v1", "v2"):
        leftover_deployment(ctx, ENDPOINT, deployment, MODEL, tmp_path)
    record = live_model(ctx, MODEL, ENDPOINT, "v1")
    record.desired_version = "2"
    record.deployment = {"step": "provisioning", "version": "2", "name": "v2", "endpoint": ENDPOINT, "previous": "v1"}
    ctx.ledger.save(record)

    # The collector alone (the tick's models loop would carry on with the rollout and roll v2 back).
    outcome = collect_orphans(with_grace(ctx, 0), ctx.backend.list_managed_endpoints())
    assert outcome == {}  # v1 is live, v2 is being rolled out: neither is even a suspect
    assert phase(ctx, ENDPOINT, "v2") != DeploymentPhase.NOT_FOUND


def test_an_orphan_is_left_while_another_worker_holds_the_model(runs_ctx: RunContext, tmp_path: Path) -> None:
    ctx = runs_ctx
    for deployment in ("v1", "v5"):
        leftover_deployment(ctx, ENDPOINT, deployment, MODEL, tmp_path)
    live_model(ctx, MODEL, ENDPOINT, "v1")
    assert ctx.ledger.acquire_lease(f"model:{MODEL}", "reconcile:elsewhere", 60)

    assert reconcile_all(with_grace(ctx, 0)).orphans == {f"{ENDPOINT}/v5": "kept: lease held elsewhere"}
    assert phase(ctx, ENDPOINT, "v5") != DeploymentPhase.NOT_FOUND
    ctx.ledger.release_lease(f"model:{MODEL}", "reconcile:elsewhere")
    assert reconcile_all(with_grace(ctx, 0)).orphans == {f"{ENDPOINT}/v5": "deleted"}
