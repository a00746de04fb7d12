"""Hugging Face import (the notebook's ``download-dataset.py``): the first N% of a dataset's splits → a JSONL under
``incoming/{model}/``, which the blob trigger then prepares like any upload.

Why in two steps: a download can take minutes, longer than an HTTP request may wait. ``POST
/api/models/{model}/imports`` only validates the request and stores it as ``incoming/{model}/imports/{id}.import.json``
(202); the blob trigger sees that blob and runs the import. ``{id}`` is a hash of the request, so the same request
twice is one import. Progress lives in ``imports/{model}/{id}.json`` (outside ``incoming/``: writing it triggers
nothing). ``datasets`` is imported only inside the import: it is heavy and the function app must start fast.

All requested splits go into one JSONL: the preparation then splits train/test by conversation hash, like any
other data, so a conversation lands in the same split whichever way it arrived.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shared.blobstream import ensure_container
from shared.dropzone import IMPORT_SUFFIX, INCOMING, Answer, IngestResult, status_url
from shared.errors import BadInput, NotFound
from shared.jsonbody import InvalidJSONBody, parse_json_body
from shared.names import validate_model_name
from shared.timeutil import iso

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, ContainerClient

    from shared.settings import Settings

log = logging.getLogger(__name__)

DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
SPLIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REQUEST_KEYS = ("dataset", "subset", "train_split", "test_split", "percent")
BATCH_ROWS = 1000


class ImportRequestError(BadInput, ValueError):
    code = "invalid_import_request"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImportRequest:
    dataset: str
    subset: str | None = None
    train_split: str = "train"
    test_split: str | None = None
    percent: int = 100

    @property
    def import_id(self) -> str:
        return hashlib.sha256(orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    @property
    def splits(self) -> list[str]:
        return [self.train_split] + (
            [self.test_split] if self.test_split and self.test_split != self.train_split else []
        )


def parse_import_request(body: Any) -> ImportRequest:
    """Validate the JSON body of ``POST .../imports``; ``ImportRequestError`` names the field."""
    if not isinstance(body, dict):
        raise ImportRequestError("body", 'the body must be a JSON object such as {"dataset": "owner/name"}')
    unknown = sorted(set(body) - set(REQUEST_KEYS))
    if unknown:
        raise ImportRequestError(unknown[0], f"unknown field {unknown[0]!r}; allowed: {', '.join(REQUEST_KEYS)}")
    dataset = body.get("dataset")
    if not isinstance(dataset, str) or not DATASET_RE.match(dataset) or ".." in dataset:
        raise ImportRequestError(
            "dataset", "dataset must be a Hugging Face dataset id such as 'HuggingFaceH4/ultrachat_200k'"
        )
    subset = body.get("subset")
    if subset is not None and (not isinstance(subset, str) or not SPLIT_RE.match(subset)):
        raise ImportRequestError("subset", "subset must be null or a configuration name (letters, digits, . _ -)")
    train_split = body.get("train_split", "train")
    if not isinstance(train_split, str) or not SPLIT_RE.match(train_split):
        raise ImportRequestError("train_split", "train_split must be a split name such as 'train_sft'")
    test_split = body.get("test_split")
    if test_split is not None and (not isinstance(test_split, str) or not SPLIT_RE.match(test_split)):
        raise ImportRequestError("test_split", "test_split must be null or a split name such as 'test_sft'")
    percent = body.get("percent", 100)
    if isinstance(percent, float) and percent.is_integer():
        percent = int(percent)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ImportRequestError("percent", "percent must be a whole number from 1 to 100 (the first N% of each split)")
    return ImportRequest(dataset, subset, train_split, test_split, percent)


def request_blob_name(model: str, import_id: str) -> str:
    return f"{INCOMING}{model}/imports/{import_id}{IMPORT_SUFFIX}"


def status_blob_name(model: str, import_id: str) -> str:
    return f"imports/{model}/{import_id}.json"


def import_status_url(model: str, import_id: str) -> str:
    return f"/api/models/{model}/imports/{import_id}"


def output_blob_name(model: str, request: ImportRequest) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", request.dataset.lower()).strip("-")[:48]
    return f"{INCOMING}{model}/hf-{slug}-{request.import_id}.jsonl"


def _container(settings: Settings) -> ContainerClient:
    from shared.storage import blob_service

    return blob_service(settings).get_container_client(settings.training_container)


def _read_json(container: ContainerClient, name: str) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return orjson.loads(container.get_blob_client(name).download_blob().readall())
    except ResourceNotFoundError:
        return None


def _write_status(container: ContainerClient, model: str, request: ImportRequest, **fields: Any) -> dict[str, Any]:
    status = {
        "import_id": request.import_id,
        "model": model,
        "request": asdict(request),
        "status_url": import_status_url(model, request.import_id),
        "updated_at": iso(),
        **fields,
    }
    container.upload_blob(status_blob_name(model, request.import_id), orjson.dumps(status), overwrite=True)
    return status


# -- HTTP side -----------------------------------------------------------------------------------------------------


def request_import(settings: Settings, model: str, body: bytes) -> Answer:
    """``POST /api/models/{model}/imports``: store the request for the blob trigger; accepted (or, when the same
    import is known and has not failed, its status)."""
    validate_model_name(model)
    try:
        request = parse_import_request(parse_json_body(body or b"null"))
    except InvalidJSONBody as exc:
        raise BadInput(str(exc), code=exc.code, field="body") from None
    container = _container(settings)
    ensure_container(container)
    import_id = request.import_id
    status = _read_json(container, status_blob_name(model, import_id))
    answer = {"model": model, "import_id": import_id, "status_url": import_status_url(model, import_id)}
    if status is not None and status.get("state") != "failed":
        return Answer({**status, **answer, "duplicate": True})
    # new, or retrying a failed import: (re)writing the request blob triggers the import
    _write_status(container, model, request, state="pending")
    container.upload_blob(
        request_blob_name(model, import_id), orjson.dumps(asdict(request)), overwrite=True, metadata={"kind": "import"}
    )
    return Answer({**answer, "state": "pending", "request": asdict(request), "duplicate": False}, accepted=True)


def get_import(settings: Settings, model: str, import_id: str) -> dict[str, Any]:
    """``GET /api/models/{model}/imports/{import_id}``: pending → running → done (with the dataset) or failed."""
    validate_model_name(model)
    if not re.fullmatch(r"[0-9a-f]{16}", import_id):
        raise BadInput("import ids are 16 lowercase hex characters", code="invalid_import_id", field="import_id")
    status = _read_json(_container(settings), status_blob_name(model, import_id))
    if status is None:
        raise NotFound(f"no import {import_id} for model {model!r}", code="import_not_found", field="import_id")
    return status


# -- blob trigger side ------------------------------------------------------------------------------------------------


def run_import_request(client: BlobClient, model: str, *, settings: Settings) -> IngestResult:
    """Run the import a request blob asks for (idempotent: an import whose JSONL exists is not redone)."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.blobstream import BlockBlobWriter
    from shared.storage import blob_service

    container = blob_service(settings).get_container_client(client.container_name)
    try:
        request = parse_import_request(orjson.loads(client.download_blob().readall()))
    except (orjson.JSONDecodeError, ImportRequestError) as exc:
        log.warning("import request %s is invalid: %s", client.blob_name, exc, extra={"model": model})
        return IngestResult("failed", model, message=f"invalid import request: {exc}")
    ids = {"model": model, "import_id": request.import_id}
    output = output_blob_name(model, request)
    try:
        done = container.get_blob_client(output).get_blob_properties()
    except ResourceNotFoundError:
        done = None
    if done is not None:
        dataset_id = (done.metadata or {}).get("dataset_id", "")
        _write_status(container, model, request, **_done_fields(model, output, dataset_id, done.metadata))
        return IngestResult("existing", model, dataset_id, message=f"import already wrote {output}", details=ids)
    _write_status(container, model, request, state="running", started_at=iso())
    log.info("import %s: %s into %s", request.import_id, request.dataset, output, extra=ids)
    digest = hashlib.sha256()
    rows = 0
    try:
        writer = BlockBlobWriter(container.get_blob_client(output))
        for line in iter_jsonl(request, settings.hf_local_datasets_dir):
            digest.update(line)
            writer.write(line)
            rows += 1
        dataset_id = digest.hexdigest()[:16]
        writer.metadata = {"dataset_id": dataset_id, "import_id": request.import_id, "rows": str(rows)}
        writer.close()  # committing the JSONL fires the blob trigger that prepares it
    except Exception as exc:  # noqa: BLE001 - a failed download/parse is the user's to see, not a retry loop
        message = f"{type(exc).__name__}: {exc}"
        log.warning("import %s failed: %s", request.import_id, message, extra=ids)
        _write_status(container, model, request, state="failed", error=message[:2000])
        return IngestResult("failed", model, message=message, details=ids)
    _write_status(container, model, request, **_done_fields(model, output, dataset_id, writer.metadata))
    return IngestResult("imported", model, dataset_id, message=f"{rows} rows into {output}", details=ids)


def _done_fields(model: str, output: str, dataset_id: str, metadata: dict[str, str] | None) -> dict[str, Any]:
    rows = int((metadata or {}).get("rows", "0") or 0)
    return {
        "state": "done",
        "blob": output,
        "rows": rows,
        "dataset_id": dataset_id,
        "dataset_status_url": status_url(model, dataset_id) if dataset_id else "",
        "finished_at": iso(),
    }


def iter_jsonl(request: ImportRequest, local_root: str = "") -> Iterator[bytes]:
    """Each row of the first ``percent``% of each requested split, as one JSON line (bytes with ``\\n``)."""
    with tempfile.TemporaryDirectory(prefix="autotune-hf-") as cache_dir:  # no cache left behind on the host
        for split in request.splits:
            dataset = _load_split(request, split, local_root, cache_dir)
            for batch in dataset.iter(batch_size=BATCH_ROWS):
                columns = list(batch)
                for values in zip(*(batch[c] for c in columns), strict=True):
                    row = dict(zip(columns, values, strict=True))
                    yield orjson.dumps(row, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _load_split(request: ImportRequest, split: str, local_root: str, cache_dir: str) -> Any:
    import datasets

    local = Path(local_root) / request.dataset if local_root else None
    if local is not None and local.exists():
        if (local / "dataset_dict.json").exists() or (local / "state.json").exists():
            saved = datasets.load_from_disk(str(local))
            if isinstance(saved, datasets.DatasetDict):
                if split not in saved:
                    raise ValueError(f"split {split!r} not in {request.dataset} (it has {', '.join(saved)})")
                saved = saved[split]
            count = math.floor(len(saved) * request.percent / 100 + 0.5)
            return saved.select(range(count))
        path = str(local)
    else:
        path = request.dataset
    return datasets.load_dataset(path, request.subset, split=f"{split}[:{request.percent}%]", cache_dir=cache_dir)
