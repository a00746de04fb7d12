"""Triggers for ingestion (logic in shared/ingest.py, shared/uploads.py and shared/hf_import.py).

- ``ingest_blob``: Event Grid-sourced blob trigger on ``incoming/``; the parameter is the blob extension's SDK
  ``BlobClient`` (never the bytes: a multi-GB upload is streamed in chunks), used only for the blob's identity:
  the worker caches it per blob for good, so the reading is done by a client closed when the ingest ends.
- ``redrive_preparations``: timer (``RECONCILE_SCHEDULE``) preparing again what a crashed preparation left behind.
- ``POST /api/models/{model}/datasets``: upload a JSONL (or gzip) body; ``GET`` lists the model's datasets.
- ``GET /api/models/{model}/datasets/{dataset_id}``: a dataset's state and report (the upload's status URL);
  ``DELETE`` excludes it from the model's later corpora (and retrains without it), ``POST .../include`` undoes that.
- ``POST /api/models/{model}/imports``, ``GET /api/models/{model}/imports/{import_id}``: Hugging Face imports.
"""

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions import deps
from functions.http import answer, handles_errors, length_required

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

    result = ingest_delivered_blob(
        client.container_name, client.blob_name, settings=deps.settings(), ledger=deps.ledger()
    )
    log.info("ingest_blob %s: %s %s", client.blob_name, result.action, result.message)


@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def redrive_preparations(timer: func.TimerRequest) -> None:
    """Prepare again a dataset whose preparation died (its own timer: never on the reconcile tick's path)."""
    from shared.reconcile.datasets import redrive_stale_datasets

    done = redrive_stale_datasets(deps.run_context())
    if done:
        log.info("redrive_preparations: %s", done)


def _declared_length(req: func.HttpRequest) -> int | None:
    raw = req.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


@bp.route(route="api/models/{model}/datasets", methods=["POST", "GET"])
@handles_errors
def model_datasets(req: func.HttpRequest) -> func.HttpResponse:
    """POST: the body is the dataset (202 + status URL; 200 with the existing ids when already known)."""
    from shared.uploads import check_upload_size, list_datasets, store_upload

    model = req.route_params.get("model", "")
    if req.method == "GET":
        return answer(list_datasets(deps.ledger(), model))
    if (unsized := length_required(req)) is not None:
        return unsized
    settings = deps.settings()
    declared = _declared_length(req)
    if declared is not None:
        check_upload_size(settings, model, declared)  # before the body is read
    filename = req.headers.get("x-filename", "") or req.params.get("filename", "")
    body = req.get_body()
    return answer(store_upload(settings, deps.ledger(), model, body, filename=filename, declared_length=declared))


@bp.route(route="api/models/{model}/datasets/{dataset_id}", methods=["GET"])
@handles_errors
def model_dataset(req: func.HttpRequest) -> func.HttpResponse:
    from shared.uploads import get_dataset

    model, dataset_id = req.route_params.get("model", ""), req.route_params.get("dataset_id", "")
    return answer(get_dataset(deps.settings(), deps.ledger(), model, dataset_id))


def _set_excluded(req: func.HttpRequest, excluded: bool) -> func.HttpResponse:
    from shared.runs.exclusion import exclusion_view, set_excluded

    model, dataset_id = req.route_params.get("model", ""), req.route_params.get("dataset_id", "")
    record, run_id = set_excluded(deps.run_context(), model, dataset_id, excluded)
    return answer(exclusion_view(record, run_id))


@bp.route(route="api/models/{model}/datasets/{dataset_id}", methods=["DELETE"])
@handles_errors
def model_dataset_exclude(req: func.HttpRequest) -> func.HttpResponse:
    """Exclude the dataset from every later corpus (its files are kept) and retrain without it."""
    return _set_excluded(req, True)


@bp.route(route="api/models/{model}/datasets/{dataset_id}/include", methods=["POST"])
@handles_errors
def model_dataset_include(req: func.HttpRequest) -> func.HttpResponse:
    """Undo an exclusion: the dataset is in the model's corpus again (and a run trains on it)."""
    return _set_excluded(req, False)


@bp.route(route="api/models/{model}/imports", methods=["POST"])
@handles_errors
def model_imports(req: func.HttpRequest) -> func.HttpResponse:
    """Start a Hugging Face import: validated and queued here, run by the blob trigger (202 + status URL)."""
    from shared.hf_import import request_import

    if (unsized := length_required(req)) is not None:
        return unsized
    return answer(request_import(deps.settings(), req.route_params.get("model", ""), req.get_body()))


@bp.route(route="api/models/{model}/imports/{import_id}", methods=["GET"])
@handles_errors
def model_import(req: func.HttpRequest) -> func.HttpResponse:
    from shared.hf_import import get_import

    model, import_id = req.route_params.get("model", ""), req.route_params.get("import_id", "")
    return answer(get_import(deps.settings(), model, import_id))
