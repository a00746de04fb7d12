"""Triggers for ingestion (logic in shared/ingest.py and shared/hf_import.py).

- ``ingest_blob``: Event Grid-sourced blob trigger on ``incoming/``; the parameter is the blob extension's SDK
  ``BlobClient`` (never the bytes: a multi-GB upload is streamed in chunks), used only for the blob's identity:
  the worker caches it per blob for good, so the reading is done by a client closed when the ingest ends.
- ``POST /api/models/{model}/datasets``: upload a JSONL (or gzip) body; ``GET`` lists the model's datasets.
- ``GET /api/models/{model}/datasets/{dataset_id}``: a dataset's state and report (the upload's status URL).
- ``POST /api/models/{model}/imports``, ``GET /api/models/{model}/imports/{import_id}``: Hugging Face imports.
"""

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions.http import error_response, json_response, length_required

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.blob_trigger(
    arg_name="client",
    path="%TRAINING_CONTAINER%/incoming/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def ingest_blob(client: blob.BlobClient) -> None:
    # The binding says which blob arrived, nothing more: the worker caches this client per blob and never
    # closes it, so reading happens through a short-lived client that shared.ingest closes when done.
    from shared.ingest import ingest_delivered_blob

    result = ingest_delivered_blob(client.container_name, client.blob_name)
    log.info("ingest_blob %s: %s %s", client.blob_name, result.action, result.message)


def _answer(answer) -> func.HttpResponse:
    headers = {"Location": answer.body["status_url"]} if answer.status == 202 and "status_url" in answer.body else None
    return json_response(answer.body, answer.status, headers)


def _context():
    from shared.ledger import get_ledger
    from shared.settings import get_settings

    return get_settings(), get_ledger()


def _declared_length(req: func.HttpRequest) -> int | None:
    raw = req.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


@bp.route(route="api/models/{model}/datasets", methods=["POST", "GET"])
def model_datasets(req: func.HttpRequest) -> func.HttpResponse:
    """POST: the body is the dataset (202 + status URL; 200 with the existing ids when already known)."""
    from shared.ingest import list_datasets, store_upload

    settings, ledger = _context()
    model = req.route_params.get("model", "")
    if req.method == "GET":
        return _answer(list_datasets(ledger, model))
    if (unsized := length_required(req)) is not None:
        return unsized
    declared = _declared_length(req)
    if declared is not None and declared > settings.max_upload_bytes:
        return error_response(
            413,
            "payload_too_large",
            f"the body is {declared} bytes, over MAX_UPLOAD_BYTES ({settings.max_upload_bytes})",
            field="body",
            limit=settings.max_upload_bytes,
        )
    filename = req.headers.get("x-filename", "") or req.params.get("filename", "")
    return _answer(store_upload(settings, ledger, model, req.get_body(), filename=filename, declared_length=declared))


@bp.route(route="api/models/{model}/datasets/{dataset_id}", methods=["GET"])
def model_dataset(req: func.HttpRequest) -> func.HttpResponse:
    from shared.ingest import get_dataset

    settings, ledger = _context()
    return _answer(
        get_dataset(settings, ledger, req.route_params.get("model", ""), req.route_params.get("dataset_id", ""))
    )


@bp.route(route="api/models/{model}/imports", methods=["POST"])
def model_imports(req: func.HttpRequest) -> func.HttpResponse:
    """Start a Hugging Face import: validated and queued here, run by the blob trigger (202 + status URL)."""
    from shared.hf_import import request_import
    from shared.settings import get_settings

    if (unsized := length_required(req)) is not None:
        return unsized
    return _answer(request_import(get_settings(), req.route_params.get("model", ""), req.get_body()))


@bp.route(route="api/models/{model}/imports/{import_id}", methods=["GET"])
def model_import(req: func.HttpRequest) -> func.HttpResponse:
    from shared.hf_import import get_import
    from shared.settings import get_settings

    return _answer(get_import(get_settings(), req.route_params.get("model", ""), req.route_params.get("import_id", "")))
