"""The drop zone's contract, shared by ingestion (``shared.ingest``) and Hugging Face imports
(``shared.hf_import``): where blobs go under ``incoming/``, what each kind of blob is, the status URL of a dataset,
and what one delivery did. It lives apart so that those two modules import it and never each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.ledger import DatasetRecord
from shared.names import InvalidNameError, validate_model_name

INCOMING = "incoming/"
PARAMETERS_FILE = "finetune.json"  # per-model fine-tuning parameters, read by run submission: not a dataset
GOLDEN_FILE = "eval.jsonl"  # the model's golden set, asked at every evaluation (shared.evaluation): never trained on
IMPORT_SUFFIX = ".import.json"


@dataclass(frozen=True)
class BlobKind:
    """What a blob under ``incoming/`` is: ``dataset``, ``import`` (a Hugging Face import request),
    ``parameters`` (finetune.json), ``golden`` (eval.jsonl) or ``ignored``; with the model from its path and, if
    not a dataset, why."""

    kind: str
    model: str = ""
    reason: str = ""


def classify(blob_name: str) -> BlobKind:
    """``incoming/{model}/{file}`` is a dataset (any file: a CSV gets a clear not-JSONL report, not silence),
    except ``finetune.json``, the golden set ``eval.jsonl``, ``imports/{id}.import.json`` requests, hidden files and
    deeper folders."""
    if not blob_name.startswith(INCOMING):
        return BlobKind("ignored", reason=f"{blob_name} is not under {INCOMING}")
    parts = blob_name[len(INCOMING) :].split("/")
    if len(parts) < 2 or not parts[0]:
        return BlobKind("ignored", reason=f"{blob_name}: put files under incoming/{{model}}/ to name the model")
    model = parts[0]
    try:
        validate_model_name(model)
    except InvalidNameError as exc:
        return BlobKind("ignored", reason=f"{blob_name}: {exc}")
    rest = parts[1:]
    if rest[0] == "imports" and len(rest) == 2 and rest[1].endswith(IMPORT_SUFFIX):
        return BlobKind("import", model)
    if len(rest) != 1:
        return BlobKind("ignored", model, f"{blob_name}: only files directly under incoming/{model}/ are datasets")
    name = rest[0]
    if name == PARAMETERS_FILE:
        return BlobKind("parameters", model, f"{blob_name} holds fine-tuning parameters, read when a run is submitted")
    if name == GOLDEN_FILE:
        return BlobKind("golden", model, f"{blob_name} is the golden set: asked at every evaluation, never trained on")
    if name.startswith((".", "_")) or not name:
        return BlobKind("ignored", model, f"{blob_name}: hidden files are ignored")
    return BlobKind("dataset", model)


def dataset_prefix(model: str, dataset_id: str) -> str:
    return f"datasets/{model}/{dataset_id}/"


def status_url(model: str, dataset_id: str) -> str:
    return f"/api/models/{model}/datasets/{dataset_id}"


@dataclass
class IngestResult:
    """What one delivery did: ``prepared``, ``rejected``, ``failed``, ``existing`` (already done), ``imported``,
    ``ignored``. ``dataset`` is the ledger record when there is one."""

    action: str
    model: str = ""
    dataset_id: str = ""
    run_id: str = ""
    message: str = ""
    dataset: DatasetRecord | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    """What an API entry point of ``shared/`` returns: the JSON ``body``, and whether the request was ``accepted``
    as work that finishes later (the body's ``status_url`` says where to look). ``functions/http.py`` decides the
    HTTP status; errors are raised (``shared.errors``), never answered here."""

    body: dict[str, Any]
    accepted: bool = False


__all__ = [
    "GOLDEN_FILE",
    "IMPORT_SUFFIX",
    "INCOMING",
    "PARAMETERS_FILE",
    "Answer",
    "BlobKind",
    "IngestResult",
    "classify",
    "dataset_prefix",
    "status_url",
]
