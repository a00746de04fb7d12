"""The dataset backstop: a preparation that crashed is done again from its source blob.

Why: ingestion's ledger record (state ``preparing``) is its claim, kept fresh by a heartbeat; if the Function
instance dies mid-preparation, nothing retries it unless the blob trigger delivers the blob again, which it may
never do. So each reconciler tick finds ``preparing`` records whose heartbeat is stale (ingest's own rule,
``claim_is_stale``) and hands their source blob to the same entry point a delivery uses (``ingest_blob``), which
takes the stale claim over. Nothing is lost: the upload itself is never changed, and a source blob deleted since
is recorded as the dataset's error instead of being retried forever.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.ledger import DatasetRecord
from shared.runs.context import RunContext, new_owner
from shared.timeutil import iso

log = logging.getLogger(__name__)

# Preparing a big upload takes minutes; a timer tick re-drives at most this many so it never runs for long.
MAX_REDRIVES_PER_TICK = 2
REDRIVE_LEASE_SECONDS = 120.0  # two reconcilers never re-drive the same dataset at once


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
        container, _, name = fresh.source_blob.partition("/")
        if not container or not name:
            return _give_up(ctx, fresh, f"its source blob is unknown ({fresh.source_blob!r}); upload the data again")
        client = blob_service(ctx.settings).get_blob_client(container, name)
        if not client.exists():
            return _give_up(ctx, fresh, f"its source blob {fresh.source_blob} no longer exists; upload the data again")
        log.warning("dataset %s/%s was left preparing; preparing it again", fresh.model, fresh.dataset_id)
        result = ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
        if result.dataset_id and result.dataset_id != fresh.dataset_id:
            # The blob was overwritten with other bytes: that content is its own dataset; this one cannot be redone.
            _give_up(ctx, fresh, f"{fresh.source_blob} now holds other data (dataset {result.dataset_id})")
        return result.action
    finally:
        ctx.ledger.release_lease(lease, owner)


def _give_up(ctx: RunContext, record: DatasetRecord, reason: str) -> str:
    message = f"preparation was interrupted and cannot be redone: {reason}"

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


__all__ = ["MAX_REDRIVES_PER_TICK", "redrive", "redrive_stale_datasets", "stale_preparing"]
