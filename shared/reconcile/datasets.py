"""The dataset backstop: a preparation that crashed is done again from its source blob, a bounded number of times.

Why: ingestion's ledger record (state ``preparing``) is its claim, kept fresh by a heartbeat; if the Function
instance dies mid-preparation, nothing retries it unless the blob trigger delivers the blob again, which it may
never do. So the ``redrive_preparations`` timer finds ``preparing`` records whose heartbeat is stale (ingest's own
rule, ``claim_is_stale``) and hands their source blob to the same entry point a delivery uses (``ingest_blob``),
which takes the stale claim over. Nothing is lost: the upload itself is never changed, and a source blob deleted
since is recorded as the dataset's error instead of being retried forever. A dataset prepared but never gathered
into a run (the process died in between) is gathered by the reconcile tick (``gather_stray_datasets``: a query
and a few writes, nothing slow).

Bounded (``shared/ingest_limits.py``): a preparation started ``PREPARE_MAX_ATTEMPTS`` times for the same upload
without finishing is recorded as ``failed`` with the reason instead of being started again.

Off the reconciler's path: a preparation may take minutes (``MAX_DROP_BYTES`` is sized so that one fits in a
function invocation), so it runs in its own timer function, never inside the reconcile tick, whose deployment
steps must not wait behind it (nor die with it, when a poisoned file kills the process that prepares it).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.ingest_limits import exhausted, exhausted_reason
from shared.ledger import DatasetRecord
from shared.runs.context import RunContext, new_owner
from shared.timeutil import iso

log = logging.getLogger(__name__)

# One preparation may take most of an invocation (MAX_DROP_BYTES is sized for it): one per timer invocation.
MAX_REDRIVES_PER_TICK = 1
REDRIVE_LEASE_SECONDS = 120.0  # two timers never re-drive the same dataset at once
INTERRUPTED = "preparation was interrupted and cannot be redone"


def stale_preparing(ctx: RunContext) -> list[DatasetRecord]:
    """Datasets stuck in ``preparing`` with no live owner, oldest first."""
    from shared.ingest import claim_is_stale

    records = ctx.ledger.query_eq(DatasetRecord, state="preparing")
    return sorted((r for r in records if claim_is_stale(r)), key=lambda r: (r.updated_at, r.dataset_id))


def redrive_stale_datasets(ctx: RunContext, limit: int = MAX_REDRIVES_PER_TICK) -> dict[str, str]:
    """Re-drive stale preparations; returns ``{"model/dataset_id": what happened}`` for those acted on."""
    done: dict[str, str] = {}
    for record in stale_preparing(ctx)[:limit]:
        key = f"{record.model}/{record.dataset_id}"
        try:
            done[key] = redrive(ctx, record)
        except Exception as exc:  # one bad dataset must not stop the tick; the next tick tries again
            log.exception("re-driving dataset %s failed", key, extra=_ids(record))
            done[key] = f"error: {type(exc).__name__}: {exc}"
    return done


def redrive(ctx: RunContext, record: DatasetRecord) -> str:
    """Prepare a stale dataset again from its source blob (under a lease); returns the ingest action."""
    from shared.ingest import claim_is_stale, ingest_blob
    from shared.storage import blob_service

    owner = new_owner("redrive")
    lease = f"dataset:{record.model}:{record.dataset_id}"  # "/" is not allowed in a table key
    if not ctx.ledger.acquire_lease(lease, owner, REDRIVE_LEASE_SECONDS):
        return "skipped: another worker is re-driving it"
    try:
        fresh = ctx.ledger.get(DatasetRecord, record.model, record.dataset_id)
        if fresh is None or not claim_is_stale(fresh):
            return "skipped: no longer stale"
        if exhausted(ctx.settings, fresh):
            return _give_up(ctx, fresh, exhausted_reason(ctx.settings, fresh))
        container, _, name = fresh.source_blob.partition("/")
        if not container or not name:
            reason = f"its source blob is unknown ({fresh.source_blob!r}); upload the data again"
            return _give_up(ctx, fresh, f"{INTERRUPTED}: {reason}")
        client = blob_service(ctx.settings).get_blob_client(container, name)
        if not client.exists():
            reason = f"its source blob {fresh.source_blob} no longer exists; upload the data again"
            return _give_up(ctx, fresh, f"{INTERRUPTED}: {reason}")
        log.warning("dataset %s/%s was left preparing; preparing it again", fresh.model, fresh.dataset_id)
        result = ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
        if result.dataset_id and result.dataset_id != fresh.dataset_id:
            # The blob was overwritten with other bytes: that content is its own dataset; this one cannot be redone.
            reason = f"{fresh.source_blob} now holds other data (dataset {result.dataset_id})"
            _give_up(ctx, fresh, f"{INTERRUPTED}: {reason}")
        return result.action
    finally:
        ctx.ledger.release_lease(lease, owner)


def gather_stray_datasets(ctx: RunContext) -> dict[str, str]:
    """Prepared datasets no run has gathered (ingestion died between preparing and gathering, and the blob was
    never delivered again): gathered now, so their model trains on them. ``{"model/dataset_id": what happened}``."""
    from shared.runs.create import create_run

    done: dict[str, str] = {}
    for record in ctx.ledger.query_eq(DatasetRecord, state="prepared", run_id=""):
        if record.excluded:
            continue
        key = f"{record.model}/{record.dataset_id}"
        try:
            done[key] = f"gathered into run {create_run(ctx.ledger, record).run_id}"
        except Exception as exc:  # one bad dataset must not stop the tick; the next tick tries again
            log.exception("gathering dataset %s failed", key, extra=_ids(record))
            done[key] = f"error: {type(exc).__name__}: {exc}"
    return done


def _give_up(ctx: RunContext, record: DatasetRecord, message: str) -> str:
    def change(current: DatasetRecord | None) -> DatasetRecord | None:
        if current is None or current.state != "preparing":
            return None
        current.state = "failed"
        current.error = message
        current.updated_at = iso()
        return current

    ctx.ledger.mutate(DatasetRecord, record.model, record.dataset_id, change)
    log.warning("dataset %s/%s: %s", record.model, record.dataset_id, message, extra=_ids(record))
    return "failed"


def _ids(record: DatasetRecord) -> dict[str, Any]:
    return {"model": record.model, "dataset_id": record.dataset_id}


__all__ = ["MAX_REDRIVES_PER_TICK", "gather_stray_datasets", "redrive", "redrive_stale_datasets", "stale_preparing"]
