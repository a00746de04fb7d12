"""Garbage collection: a deployment nobody references and nobody calls is deleted, so no GPU bills for nothing.

Why: the steps that retire a deployment (cleanup, rollback, abandon) try its deletion once; a throttled call, a
platform error or a crash in between leaves it running, billing every hour, with nothing in the ledger that
would ever look at it again. So each tick looks at every deployment on the endpoints this app manages (tag
``autotune-managed=true``; nothing else is ever touched) and deletes one when
- no model record references it (as its live deployment, the one being rolled out, or the previous one of a
  rollout in flight): a rollout records a deployment's name before it begins it, so only one left behind is
  unreferenced;
- it has no traffic (a deployment that serves is never deleted, whatever the ledger says); and
- it is at least ``ORPHAN_GRACE_MINUTES`` old (room for an operator's hand-made deployment being set up, and
  for clocks that disagree).
The decision is taken again under the model's lease, on a fresh read of the record and the endpoint.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.backends.base import MODEL_TAG, DeploymentPhase, EndpointInfo
from shared.ledger import ModelRecord
from shared.names import endpoint_name_for
from shared.reconcile.lease import model_lease, model_lease_name
from shared.runs.context import RunContext
from shared.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)


def references(record: ModelRecord) -> set[tuple[str, str]]:
    """The (endpoint, deployment) pairs a model record still needs."""
    refs: set[tuple[str, str]] = set()
    if record.endpoint_name and record.live_deployment:
        refs.add((record.endpoint_name, record.live_deployment))
    progress = record.deployment or {}
    endpoint = str(progress.get("endpoint") or "")
    for key in ("name", "previous"):
        if endpoint and progress.get(key):
            refs.add((endpoint, str(progress[key])))
    return refs


def collect_orphans(ctx: RunContext, endpoints: list[EndpointInfo]) -> dict[str, str]:
    """Delete orphan deployments on ``endpoints`` (the managed ones listed this tick); returns
    ``{"endpoint/deployment": what happened}`` for each suspect (``deleted``, or why it was kept)."""
    records = list(ctx.ledger.query(ModelRecord, "PartitionKey eq @p", p="models"))
    refs = set().union(*(references(record) for record in records)) if records else set()
    owners = {record.endpoint_name or endpoint_name_for(ctx.settings, record.model): record.model for record in records}
    outcome: dict[str, str] = {}
    for info in endpoints:
        if not info.managed:
            continue
        suspects = [d for d in info.deployments if (info.name, d) not in refs and not info.traffic.get(d)]
        if not suspects:
            continue
        model = owners.get(info.name) or str(info.tags.get(MODEL_TAG, ""))
        lease = model_lease_name(model) if model else f"endpoint:{info.name}"
        with model_lease(ctx, lease, "orphans") as held:
            for deployment in suspects:
                key = f"{info.name}/{deployment}"
                if not held:
                    outcome[key] = "kept: lease held elsewhere"
                    continue
                try:
                    outcome[key] = _collect(ctx, info.name, deployment, model)
                except Exception as exc:  # one deployment's trouble must not stop the others; next tick retries
                    log.exception("collecting orphan deployment %s failed", key)
                    outcome[key] = f"error: {type(exc).__name__}: {exc}"
    return outcome


def _collect(ctx: RunContext, endpoint: str, deployment: str, model: str) -> str:
    """Look again (under the lease) and delete the deployment if it is still an orphan."""
    record = ctx.ledger.get(ModelRecord, "models", model) if model else None
    if record is not None and (endpoint, deployment) in references(record):
        return "kept: referenced"
    info = ctx.backend.get_endpoint(endpoint)
    if info is None or deployment not in info.deployments:
        return "gone"
    if info.traffic.get(deployment):
        return f"kept: it has {info.traffic[deployment]}% of the traffic"
    state = ctx.backend.get_deployment(endpoint, deployment)
    if state.phase in (DeploymentPhase.NOT_FOUND, DeploymentPhase.DELETING):
        return "gone"
    created = parse_iso(state.created_at)
    grace = timedelta(minutes=ctx.settings.orphan_grace_minutes)
    if created is None:
        return "kept: its creation time is unknown"
    if utcnow() - created < grace:
        return f"kept: younger than ORPHAN_GRACE_MINUTES ({ctx.settings.orphan_grace_minutes:g})"
    ctx.backend.begin_delete_deployment(endpoint, deployment)
    log.warning(
        "deleting orphan deployment %s/%s (created %s): no model references it and it has no traffic",
        endpoint,
        deployment,
        state.created_at,
        extra={"model": model, "endpoint": endpoint},
    )
    return "deleted"


__all__ = ["collect_orphans", "references"]
