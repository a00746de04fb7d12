"""What keeps one preparation from running for ever: a size it can finish within the function timeout, and a
limit on how often a preparation that keeps dying is started again.

Why: a preparation runs inside one function invocation (the blob trigger, or the re-drive timer), and the host
ends an invocation at ``functionTimeout`` (host.json: 10 minutes) without running any more of our code; a process
can also die (out of memory, a bad line that crashes a native parser). Either way the claim goes stale, the
re-drive starts the preparation again, and it dies again, for ever. Two guards:

- **Size** (``MAX_DROP_BYTES``): a drop larger than one invocation can prepare in time is refused at once, before
  a byte is read, as ``rejected`` with reason ``too_large`` (its content is never read, so its dataset id comes
  from the blob's name and version instead of its content). Sizing: ``bench/dataprep.py`` measured the whole
  preparation at about 230 MB/s of CPU (300 MB/s wall) on this project's 2-core machine. In Azure the input is
  read twice over the network (hash pass, then preparation) and the outputs are written as staged blocks, so we
  assume a quarter of the local rate (``ASSUMED_AZURE_BYTES_PER_SECOND``, 57 MB/s) and give it half of
  ``functionTimeout`` (300 s): about 17 GB. The default, 10 GiB, keeps a further margin for a slower instance.
  ``tests/unit/test_ingest_limits.py`` checks the default against host.json.
- **Attempts** (``PREPARE_MAX_ATTEMPTS``): every start of a preparation counts on the dataset's record
  (``attempts``); once a preparation of the same upload has been started that many times without finishing, it
  ends ``failed`` with the reason and nothing starts it again. The upload is kept; dropping the file again (a new
  blob, or the same blob written again) starts a new count.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from shared.dropzone import IngestResult, dataset_prefix
from shared.ledger import AlreadyExistsError, DatasetRecord, Ledger

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

    from shared.settings import Settings

log = logging.getLogger(__name__)

ASSUMED_AZURE_BYTES_PER_SECOND = 57 * 10**6  # a quarter of bench/dataprep.py's ~230 MB/s of CPU, measured locally
TIMEOUT_SHARE = 0.5  # of functionTimeout, for one preparation
TOO_LARGE = "too_large"


def _size_words(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 else f"{size / 1024**2:.1f} MiB"


def too_large(settings: Settings, size: int) -> str:
    """Why a drop of ``size`` bytes is refused ('' when it is not)."""
    limit = settings.max_drop_bytes
    if size <= limit:
        return ""
    return (
        f"the file is {size} bytes ({_size_words(size)}), over MAX_DROP_BYTES ({limit}, {_size_words(limit)}): one "
        "function invocation could not prepare it before the function timeout. Split it into smaller files and "
        "drop those (each is its own dataset, and each trains its own run)"
    )


def refuse(
    client: BlobClient, model: str, etag: str, size: int, reason: str, *, settings: Settings, ledger: Ledger
) -> IngestResult:
    """Record a drop refused for its size (``rejected``, reason ``too_large``) and its report, without reading it."""
    from shared.blobstream import write_json
    from shared.storage import blob_service

    source = f"{client.container_name}/{client.blob_name}"
    dataset_id = hashlib.sha256(f"{source}@{etag}".encode()).hexdigest()[:16]
    prefix = dataset_prefix(model, dataset_id)
    report = {
        "dataset_id": dataset_id,
        "accepted": False,
        "bytes": size,
        "rejection": {"reason": TOO_LARGE, "message": reason},
        "source": source,
    }
    container = blob_service(settings).get_container_client(client.container_name)
    write_json(container, f"{prefix}report.json", report)
    record = DatasetRecord(
        model=model,
        dataset_id=dataset_id,
        state="rejected",
        source_blob=source,
        source_etag=etag,
        prefix=prefix,
        report=report,
        error=reason,
    )
    try:
        record = ledger.create(record)
    except AlreadyExistsError:  # delivered again: already refused
        record = ledger.get(DatasetRecord, model, dataset_id) or record
    log.warning("ingest: %s refused: %s", source, reason, extra={"model": model, "dataset_id": dataset_id})
    return IngestResult("rejected", model, dataset_id, message=reason, dataset=record)


def same_upload(record: DatasetRecord, source: str, etag: str) -> bool:
    """Whether a delivery is of the upload the record counts attempts for (a record without an ETag: yes)."""
    return record.source_blob == source and (not record.source_etag or record.source_etag == etag)


def exhausted(settings: Settings, record: DatasetRecord) -> bool:
    return record.attempts >= settings.prepare_max_attempts


def exhausted_reason(settings: Settings, record: DatasetRecord) -> str:
    return (
        f"preparation was started {record.attempts} times (PREPARE_MAX_ATTEMPTS={settings.prepare_max_attempts}) "
        f"and never finished: the process died or ran past the function timeout (last alive at "
        f"{record.updated_at}). The upload is kept at {record.source_blob}; drop it again to try once more, or "
        "split it into smaller files"
    )


__all__ = ["ASSUMED_AZURE_BYTES_PER_SECOND", "TIMEOUT_SHARE", "TOO_LARGE", "exhausted", "refuse", "too_large"]
