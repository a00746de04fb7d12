"""Ingestion: a blob under ``incoming/{model}/`` → a prepared dataset under ``datasets/{model}/{dataset_id}/`` →
a run. Uploads (``shared.uploads``) only store the body under ``incoming/``, so uploads and drops share this path.

Idempotent, because blob triggers deliver at least once:
- ``dataset_id`` is the SHA-256 (16 hex) of the *decompressed* content, computed in a first streaming pass (cheap:
  hashing runs at over 1 GB/s); a dataset already prepared (or rejected) is answered from the ledger, not redone.
- The ledger record (state ``preparing``) is the claim, kept fresh by a heartbeat while preparing. A second
  delivery waits for it to finish (then answers from the ledger); if the heartbeat stops for
  ``STALE_CLAIM_SECONDS`` (the owner crashed), it takes the claim over; if it waits too long, it fails so that the
  host retries it later.
- Outputs are committed block lists: rewriting them gives the same bytes. The upload itself is never changed.
- The dataset is then gathered into its model's next run (``shared.runs.submit.start_run_for_dataset``,
  idempotent per dataset): many datasets arriving together train in one run, on the model's whole corpus.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from shared import crashpoints
from shared.dropzone import IngestResult, classify, dataset_prefix
from shared.errors import RetryLater
from shared.ledger import AlreadyExistsError, ConflictError, DatasetRecord, Ledger
from shared.timeutil import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

    from shared.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30  # a preparing delivery touches its claim this often
STALE_CLAIM_SECONDS = 120  # a claim untouched this long has no live owner (it crashed): the next delivery takes over
BUSY_WAIT_SECONDS = 150  # a second delivery waits this long for the first to finish (or go stale), then retries
BUSY_POLL_SECONDS = 2.0
OUTPUTS = ("train", "test", "rejected")
LEDGER_REPORT_CHARS = 30_000  # a table property holds 32K characters


class IngestBusyError(RetryLater, RuntimeError):
    """Another delivery is preparing the same dataset right now; raising makes the host retry later."""

    code = "ingest_busy"


def ingest_delivered_blob(
    container: str,
    blob_name: str,
    *,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
) -> IngestResult:
    """The blob trigger's job for one delivered blob, read through a client made for it and closed at the end.

    Why not the binding's client: the Functions worker caches the SDK ``BlobClient`` it binds, one per distinct
    blob, and never closes it, so reading through it leaves a connection open per blob ever delivered. The
    trigger passes only the blob's identity (container and name); this client lives for one ingest.
    """
    from shared.settings import get_settings
    from shared.storage import blob_service

    settings = settings or get_settings()
    with blob_service(settings) as service:  # closing the service closes the transport its blob clients share
        return ingest_blob(service.get_blob_client(container, blob_name), settings=settings, ledger=ledger)


def ingest_blob(
    client: BlobClient,
    *,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
) -> IngestResult:
    """Handle one delivered blob of ``incoming/`` (the blob trigger's whole job)."""
    from shared.ledger import get_ledger
    from shared.settings import get_settings

    settings = settings or get_settings()
    ledger = ledger or get_ledger()
    blob_name = client.blob_name
    kind = classify(blob_name)
    if kind.kind in ("ignored", "parameters", "golden"):
        log.info("ingest: not a dataset: %s", kind.reason, extra={"model": kind.model, "blob": blob_name})
        return IngestResult("ignored", kind.model, message=kind.reason)
    if kind.kind == "import":
        from shared.hf_import import run_import_request

        return run_import_request(client, kind.model, settings=settings)
    return prepare_dataset_blob(client, kind.model, settings=settings, ledger=ledger)


def prepare_dataset_blob(
    client: BlobClient,
    model: str,
    *,
    settings: Settings,
    ledger: Ledger,
) -> IngestResult:
    """Pass 1 hashes the upload (its id); pass 2, unless the ledger already knows it, prepares it."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared import ingest_limits
    from shared.blobstream import read_chunks
    from shared.chatdata import content_id

    source = f"{client.container_name}/{client.blob_name}"
    try:
        properties = client.get_blob_properties()
    except ResourceNotFoundError:  # deleted since the event was sent: nothing to prepare, nothing to retry
        log.warning("ingest: %s no longer exists", source, extra={"model": model, "blob": client.blob_name})
        return IngestResult("ignored", model, message=f"{source} no longer exists")
    etag = properties.etag
    too_large = ingest_limits.too_large(settings, int(properties.size or 0))
    if too_large:  # refused before reading a byte: it could not be prepared in time anyway
        return ingest_limits.refuse(client, model, etag, properties.size, too_large, settings=settings, ledger=ledger)
    content = content_id(read_chunks(client, etag))
    dataset_id = content.dataset_id
    ids = {"model": model, "dataset_id": dataset_id, "blob": client.blob_name}
    record = _claim(ledger, settings, model, dataset_id, source, etag)
    if record.state == "failed":  # it kept dying: not started again for this upload (ingest_limits)
        log.warning("ingest: %s is dataset %s, failed: %s", source, dataset_id, record.error, extra=ids)
        return IngestResult("failed", model, dataset_id, message=record.error, dataset=record)
    if record.state in ("prepared", "rejected"):
        # already done by an earlier delivery (or another upload of the same bytes)
        if record.state == "prepared":
            record = _ensure_run(ledger, record)
        log.info("ingest: %s is dataset %s, already %s", source, dataset_id, record.state, extra=ids)
        return IngestResult("existing", model, dataset_id, record.run_id, f"already {record.state}", record)
    log.info("ingest: preparing %s as dataset %s", source, dataset_id, extra=ids)
    try:
        report = _prepare_outputs(client, etag, record, ledger, settings, content.content_sha256)
        crashpoints.reached("prepare", crashpoints.BEFORE, model)  # outputs written, not yet recorded
    except Exception as exc:
        _finish(ledger, record, "failed", {}, f"preparation failed: {type(exc).__name__}: {exc}")
        raise
    if report["dataset_id"] != dataset_id:  # read under the same ETag, so only a bug gets here
        message = f"content hash changed between passes ({dataset_id} then {report['dataset_id']})"
        record = _finish(ledger, record, "failed", report, message)
        return IngestResult("failed", model, dataset_id, message=message, dataset=record)
    if not report["accepted"]:
        message = report["rejection"]["message"]
        record = _finish(ledger, record, "rejected", report, message)
        log.warning("ingest: dataset %s rejected: %s", dataset_id, message, extra=ids)
        return IngestResult("rejected", model, dataset_id, message=message, dataset=record)
    record = _finish(ledger, record, "prepared", report, "")
    record = _ensure_run(ledger, record)
    log.info(
        "ingest: dataset %s prepared: %d train, %d test, %d rejected; run %s",
        dataset_id,
        report["train"],
        report["test"],
        report["rejected"],
        record.run_id,
        extra={**ids, "run_id": record.run_id},
    )
    return IngestResult("prepared", model, dataset_id, record.run_id, "prepared", record)


def _claim(ledger: Ledger, settings: Settings, model: str, dataset_id: str, source: str, etag: str) -> DatasetRecord:
    """The record to prepare under (state ``preparing``, stored by us), or the finished one as it is (``failed``
    when this upload's preparation was started ``PREPARE_MAX_ATTEMPTS`` times already). Waits while another
    delivery holds a live claim; ``IngestBusyError`` when that takes too long."""
    from shared import ingest_limits

    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        current = ledger.get(DatasetRecord, model, dataset_id)
        if current is None:
            fresh = DatasetRecord(
                model=model,
                dataset_id=dataset_id,
                source_blob=source,
                source_etag=etag,
                attempts=1,
                prefix=dataset_prefix(model, dataset_id),
            )
            with contextlib.suppress(AlreadyExistsError):
                return ledger.create(fresh)
        elif current.state in ("prepared", "rejected"):
            return current
        elif current.state == "preparing" and not _stale(current.updated_at):
            if time.monotonic() >= deadline:
                raise IngestBusyError(
                    f"dataset {model}/{dataset_id} is being prepared by another delivery (alive at "
                    f"{current.updated_at}); retry later"
                )
            time.sleep(BUSY_POLL_SECONDS)
        else:  # failed earlier, or a claim whose owner died: take it over (ETag-checked), if attempts are left
            if not ingest_limits.same_upload(current, source, etag):
                current.source_blob, current.source_etag, current.attempts = source, etag, 0  # a new upload
            if ingest_limits.exhausted(settings, current):
                if current.state == "failed":
                    return current
                current.state, current.error = "failed", ingest_limits.exhausted_reason(settings, current)
            else:
                current.state, current.error = "preparing", ""
                current.attempts += 1
            current.updated_at = iso()
            with contextlib.suppress(ConflictError):
                return ledger.save(current)


def _stale(stamp: str) -> bool:
    when = parse_iso(stamp)
    return when is None or utcnow() - when > timedelta(seconds=STALE_CLAIM_SECONDS)


def claim_is_stale(record: DatasetRecord) -> bool:
    """True for a ``preparing`` record whose owner stopped its heartbeat (crashed): the next delivery takes over."""
    return record.state == "preparing" and _stale(record.updated_at)


def heartbeat(chunks: Iterable[bytes], ledger: Ledger, record: DatasetRecord, every: float) -> Iterator[bytes]:
    """Pass ``chunks`` through, touching the claim's ``updated_at`` every ``every`` seconds (proof of life)."""
    last = time.monotonic()
    for chunk in chunks:
        yield chunk
        if time.monotonic() - last >= every:
            ledger.mutate(DatasetRecord, record.model, record.dataset_id, _touch)
            last = time.monotonic()


def _touch(current: DatasetRecord | None) -> DatasetRecord | None:
    if current is None or current.state != "preparing":
        return None
    current.updated_at = iso()
    return current


def _prepare_outputs(
    client: BlobClient, etag: str, record: DatasetRecord, ledger: Ledger, settings: Settings, content_sha256: str = ""
) -> dict[str, Any]:
    """Pass 2: stream the upload through ``chatdata.prepare`` into staged-block blobs, then write report.json.

    ``content_sha256`` is pass 1's hash of the same blob version (reads are pinned to ``etag``), so pass 2 does not
    hash the content again."""
    from shared.blobstream import BlockBlobWriter, read_chunks, write_json
    from shared.chatdata import PrepareOptions, prepare
    from shared.storage import blob_service

    container = blob_service(settings).get_container_client(client.container_name)
    prefix = dataset_prefix(record.model, record.dataset_id)
    options = PrepareOptions.from_settings(settings, source=f"{client.container_name}/{client.blob_name}")
    writers = [BlockBlobWriter(container.get_blob_client(f"{prefix}{name}.jsonl")) for name in OUTPUTS]
    chunks = heartbeat(read_chunks(client, etag), ledger, record, HEARTBEAT_SECONDS)
    report = prepare(chunks, *(writer.write for writer in writers), options, content_sha256=content_sha256)
    for writer in writers:
        writer.close()
    report["files"] = {name: f"{prefix}{name}.jsonl" for name in OUTPUTS}
    write_json(container, f"{prefix}report.json", report)
    return report


def ledger_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report as stored on the ledger record: whole when it fits a table property, else without the echo of
    the first rejections (report.json always has everything)."""
    if len(orjson.dumps(report)) <= LEDGER_REPORT_CHARS:
        return report
    return {key: value for key, value in report.items() if key != "first_rejections"}


def _finish(ledger: Ledger, record: DatasetRecord, state: str, report: dict[str, Any], error: str) -> DatasetRecord:
    def change(current: DatasetRecord | None) -> DatasetRecord | None:
        current = current or record
        current.state = state
        current.report = ledger_report(report) if report else current.report
        current.error = error
        if state == "prepared":
            current.prepared_at = iso()
        current.updated_at = iso()
        return current

    updated = ledger.mutate(DatasetRecord, record.model, record.dataset_id, change)
    assert updated is not None
    return updated


def _ensure_run(ledger: Ledger, record: DatasetRecord) -> DatasetRecord:
    """Gather a prepared dataset into its model's next run (``shared.runs.submit.start_run_for_dataset``),
    idempotent per dataset: a repeated delivery finds the run that gathered it, or re-drives an interrupted one.
    Returns the record as it is now (naming that run)."""
    from shared.runs.submit import start_run_for_dataset

    start_run_for_dataset(ledger, record)
    return ledger.get(DatasetRecord, record.model, record.dataset_id) or record
