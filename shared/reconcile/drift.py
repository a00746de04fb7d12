"""Drift repair: the ledger says a model is live; each tick checks that the platform agrees, and mends it if not.

Why: an endpoint or deployment deleted by hand (Azure ML studio, ``az ml``, a cleanup script), or traffic moved
by hand, is otherwise noticed only when a request fails or the model is next woken, and the ledger keeps
claiming a live version that nothing serves. Each tick compares every live model (no rollout in flight) with the
managed endpoints listed once for the tick; a model that looks wrong is looked at again under its lease with a
fresh read, then:
- its endpoint or its live deployment is gone: the model is recorded as ``sleeping`` (as if the sweeper had put
  it to sleep: the next request or ``POST /wake`` redeploys its version), and a pinned model, which must always
  answer, is woken at once;
- its live deployment no longer has all the traffic: the traffic is put back (100% to the live deployment).
Each repair is logged (warning) and announced as ``Autotune.ModelDrifted``.
"""

from __future__ import annotations

import logging

from shared.backends.base import EndpointInfo
from shared.ledger import ConflictError, ModelRecord
from shared.models import pinned_by, request_wake
from shared.notify import MODEL_DRIFTED, publish
from shared.reconcile.lease import model_lease, model_lease_name
from shared.runs.context import RunContext
from shared.timeutil import iso

log = logging.getLogger(__name__)

_CHANGING = {"creating", "updating"}  # an endpoint in these states is being changed by the platform: not drift


def watched(record: ModelRecord) -> bool:
    """Models whose platform state the ledger vouches for: live, with an endpoint, no rollout in flight."""
    return record.state == "live" and bool(record.endpoint_name and record.live_deployment) and not record.deployment


def problem(record: ModelRecord, info: EndpointInfo | None) -> str:
    """What the platform shows that the ledger does not expect ('' when they agree)."""
    if info is None or (info.state or "").lower() == "deleting":
        return f"endpoint {record.endpoint_name} is gone"
    if (info.state or "").lower() in _CHANGING:
        return ""
    if record.live_deployment not in info.deployments:
        return f"deployment {record.endpoint_name}/{record.live_deployment} is gone"
    if info.traffic.get(record.live_deployment) != 100:
        return f"traffic on {record.endpoint_name} is {dict(info.traffic)}, not 100% to {record.live_deployment}"
    return ""


def repair_drift(ctx: RunContext, endpoints: list[EndpointInfo]) -> dict[str, str]:
    """Check every live model against ``endpoints`` (this tick's listing); returns ``{model: repair}`` for
    each model that drifted (or could not be checked)."""
    listed = {info.name: info for info in endpoints}
    done: dict[str, str] = {}
    for record in ctx.ledger.query(ModelRecord, "PartitionKey eq @p", p="models"):
        if not watched(record) or not problem(record, listed.get(record.endpoint_name)):
            continue
        with model_lease(ctx, model_lease_name(record.model), "drift") as held:
            if not held:
                done[record.model] = "skipped: another worker holds the lease"
                continue
            try:
                done[record.model] = _repair(ctx, record.model)
            except ConflictError:
                done[record.model] = "skipped: the model changed meanwhile"
            except Exception as exc:  # one model's trouble must not stop the others; next tick looks again
                log.exception("repairing drift of model %s failed", record.model)
                done[record.model] = f"error: {type(exc).__name__}: {exc}"
    return done


def _repair(ctx: RunContext, model: str) -> str:
    record = ctx.ledger.get(ModelRecord, "models", model)
    if record is None or not watched(record):
        return "skipped: the model changed meanwhile"
    info = ctx.backend.get_endpoint(record.endpoint_name)  # fresh, and not filtered by the managed tag
    found = problem(record, info)
    if not found:
        return "consistent on a second look"
    endpoint, deployment = record.endpoint_name, record.live_deployment
    if info is not None and deployment in info.deployments and (info.state or "").lower() != "deleting":
        traffic = {name: 0 for name in info.deployments}
        traffic[deployment] = 100
        ctx.backend.set_traffic(endpoint, traffic)
        repair = f"traffic restored: 100% to {deployment}"
    else:
        record.state = "sleeping"
        record.slept_at = record.updated_at = iso()
        record.sleep_reason = f"{found}: deleted outside autotune (noticed {record.slept_at})"
        record.endpoint_name = record.scoring_uri = record.live_deployment = ""
        ctx.ledger.save(record)  # ETag-checked: a worker that changed the model meanwhile wins
        repair = "recorded as sleeping: the next request or POST /wake redeploys it"
        if pinned_by(ctx.settings, model, record):
            request_wake(ctx.settings, ctx.ledger, model, reason="drift repair (pinned model)")
            repair = f"redeploying version {record.live_version} (pinned model)"
    log.warning("model %s drifted: %s; %s", model, found, repair, extra={"model": model, "endpoint": endpoint})
    publish(
        ctx.settings,
        MODEL_DRIFTED,
        f"models/{model}",
        {"model": model, "endpoint": endpoint, "deployment": deployment, "found": found, "repair": repair},
    )
    return repair


__all__ = ["problem", "repair_drift", "watched"]
