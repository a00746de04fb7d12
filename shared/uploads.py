"""The datasets API: a body uploaded into ``incoming/{model}/`` and the datasets a model has.

Why apart from ``shared.ingest``: an upload only *stores* the file; the blob trigger then prepares it exactly as it
prepares a file dropped into the container, so uploads and drops share one code path (``ingest_blob``). These
functions return the body of the answer (an ``Answer``) or raise a domain error naming the field at fault;
``functions/http.py`` turns either into the HTTP response.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from shared.dropzone import INCOMING, Answer, status_url
from shared.errors import BadInput, NotFound
from shared.ingest import OUTPUTS
from shared.ledger import DatasetRecord, Ledger
from shared.names import validate_model_name

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

DATASET_ID_RE = re.compile(r"[0-9a-f]{16}")


def _safe_name(filename: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", filename.rsplit("/", 1)[-1]).strip("-.")
    return cleaned[:80]


def upload_blob_name(model: str, dataset_id: str, gzipped: bool) -> str:
    """Uploads are stored under a name derived from their content: the same bytes twice are one blob."""
    return f"{INCOMING}{model}/upload-{dataset_id}.jsonl{'.gz' if gzipped else ''}"


def check_upload_size(settings: Settings, model: str, size: int) -> None:
    """Refuse a body over ``MAX_UPLOAD_BYTES``: called with the declared length before the body is read, and
    with the actual length after."""
    limit = settings.max_upload_bytes
    if size > limit:
        raise BadInput(
            f"the body is {size} bytes, over MAX_UPLOAD_BYTES ({limit}); gzip it, or put the file into the "
            f"{settings.training_container} container under incoming/{model}/ directly",
            code="payload_too_large",
            field="body",
            limit=limit,
        )


def store_upload(
    settings: Settings,
    ledger: Ledger,
    model: str,
    body: bytes,
    *,
    filename: str = "",
    declared_length: int | None = None,
) -> Answer:
    """``POST /api/models/{model}/datasets``: validate, store under ``incoming/{model}/`` (the blob trigger then
    prepares it); accepted with the dataset id and status URL, or, for a repeat, the existing ids."""
    from azure.core.exceptions import ResourceExistsError

    from shared.blobstream import ensure_container
    from shared.chatdata import InputError, content_id
    from shared.storage import blob_service

    validate_model_name(model)
    check_upload_size(settings, model, max(len(body), declared_length or 0))
    if not body.strip():
        raise BadInput(
            "the request body is empty: send the JSONL (or gzipped JSONL) file", code="empty_body", field="body"
        )
    try:
        info = content_id([body])
    except InputError as exc:
        raise BadInput(f"the body starts like gzip but {exc}", code="invalid_body", field="body") from None
    dataset_id = info.dataset_id
    answer = {
        "model": model,
        "dataset_id": dataset_id,
        "status_url": status_url(model, dataset_id),
        "bytes": len(body),
    }
    existing = ledger.get(DatasetRecord, model, dataset_id)
    if existing is not None:
        return Answer({**answer, **dataset_view(existing), "duplicate": True})
    name = upload_blob_name(model, dataset_id, info.compression == "gzip")
    metadata = {"original_name": _safe_name(filename)} if _safe_name(filename) else None
    container = blob_service(settings).get_container_client(settings.training_container)
    ensure_container(container)
    try:
        container.upload_blob(name, body, overwrite=False, metadata=metadata, max_concurrency=2)
    except ResourceExistsError:
        return Answer({**answer, "state": "pending", "source_blob": name, "duplicate": True})
    log.info("upload: %d bytes for %s stored as %s", len(body), model, name, extra={"model": model})
    return Answer({**answer, "state": "pending", "source_blob": name, "duplicate": False}, accepted=True)


def dataset_view(record: DatasetRecord) -> dict[str, Any]:
    """A dataset as the API shows it (the report included; no secrets live on a dataset)."""
    files = {name: f"{record.prefix}{name}.jsonl" for name in OUTPUTS}
    files["report"] = f"{record.prefix}report.json"
    view: dict[str, Any] = {
        "model": record.model,
        "dataset_id": record.dataset_id,
        "state": record.state,
        "source_blob": record.source_blob,
        "files": files if record.state in ("prepared", "rejected") else {},
        "error": record.error,
        "excluded": record.excluded,
        "excluded_at": record.excluded_at or None,
        "prepared_at": record.prepared_at or None,
        "run_id": record.run_id,
        "status_url": status_url(record.model, record.dataset_id),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "report": record.report,
    }
    if record.run_id:
        view["run_url"] = f"/api/runs/{record.run_id}"
    return view


def get_dataset(settings: Settings, ledger: Ledger, model: str, dataset_id: str) -> dict[str, Any]:
    """``GET /api/models/{model}/datasets/{dataset_id}``: the record, or ``pending`` while only the upload exists."""
    validate_model_name(model)
    if not DATASET_ID_RE.fullmatch(dataset_id):
        raise BadInput("dataset ids are 16 lowercase hex characters", code="invalid_dataset_id", field="dataset_id")
    record = ledger.get(DatasetRecord, model, dataset_id)
    if record is not None:
        return dataset_view(record)
    from shared.storage import blob_service

    container = blob_service(settings).get_container_client(settings.training_container)
    prefix = f"{INCOMING}{model}/upload-{dataset_id}"
    for blob in container.list_blobs(name_starts_with=prefix):
        return {"model": model, "dataset_id": dataset_id, "state": "pending", "source_blob": blob.name, "report": {}}
    raise NotFound(f"no dataset {dataset_id} for model {model!r}", code="dataset_not_found", field="dataset_id")


def list_datasets(ledger: Ledger, model: str) -> dict[str, Any]:
    """``GET /api/models/{model}/datasets``: newest first, with each report's headline numbers."""
    validate_model_name(model)
    records = sorted(ledger.query_eq(DatasetRecord, PartitionKey=model), key=lambda r: r.created_at, reverse=True)
    items = []
    for record in records:
        view = dataset_view(record)
        report = view.pop("report") or {}
        view["summary"] = {key: report.get(key) for key in ("format", "total_lines", "train", "test", "rejected")}
        items.append(view)
    return {"model": model, "datasets": items}


__all__ = ["check_upload_size", "dataset_view", "get_dataset", "list_datasets", "store_upload", "upload_blob_name"]
