"""The upload and status routes as the Functions host calls them: real ``func.HttpRequest`` objects, Azurite."""

from __future__ import annotations

import gzip
import json

import azure.functions as func
import pytest

from functions import ingest as routes
from shared.ingest import ingest_blob
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import chat_rows, jsonl, runs_of

MODEL = "support-bot"
container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training


def call(handler, method: str, url: str, body: bytes = b"", headers: dict | None = None, **route_params: str):
    req = func.HttpRequest(method=method, url=url, body=body, route_params=route_params, headers=headers or {})
    response = handler.build().get_user_function()(req)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body()), response.headers


def upload(body: bytes, model: str = MODEL, headers: dict | None = None):
    return call(routes.model_datasets, "POST", f"/api/models/{model}/datasets", body, headers, model=model)


def status(dataset_id: str, model: str = MODEL):
    url = f"/api/models/{model}/datasets/{dataset_id}"
    return call(routes.model_dataset, "GET", url, model=model, dataset_id=dataset_id)


def test_upload_is_stored_under_incoming_and_answered_202_then_prepared_by_the_trigger(container, ledger, no_training):
    data = jsonl(chat_rows(60))
    code, body, headers = upload(data, headers={"x-filename": "nov/support chats.jsonl"})
    assert code == 202
    dataset_id = body["dataset_id"]
    assert body["state"] == "pending" and body["duplicate"] is False
    assert body["status_url"] == f"/api/models/{MODEL}/datasets/{dataset_id}" == headers["Location"]
    stored = container.get_blob_client(body["source_blob"])
    assert body["source_blob"] == f"incoming/{MODEL}/upload-{dataset_id}.jsonl"
    assert stored.download_blob().readall() == data
    assert stored.get_blob_properties().metadata == {"original_name": "support-chats.jsonl"}

    code, pending, _ = status(dataset_id)
    assert (code, pending["state"]) == (200, "pending")

    # the same bytes again before the trigger ran: the existing ids, no second blob
    code, again, _ = upload(data)
    assert (code, again["dataset_id"], again["duplicate"]) == (200, dataset_id, True)

    result = ingest_blob(stored)  # what the blob trigger does with it
    assert result.action == "prepared" and result.dataset_id == dataset_id
    code, done, _ = status(dataset_id)
    assert code == 200 and done["state"] == "prepared"
    assert done["report"]["train"] + done["report"]["test"] == 60
    assert done["files"]["train"] == f"datasets/{MODEL}/{dataset_id}/train.jsonl"
    assert done["run_id"] == result.run_id and done["run_url"] == f"/api/runs/{result.run_id}"

    # after preparation, the same content (gzipped this time) is answered with the dataset and its run
    code, repeat, _ = upload(gzip.compress(data))
    assert code == 200 and repeat["duplicate"] is True
    assert (repeat["dataset_id"], repeat["state"], repeat["run_id"]) == (dataset_id, "prepared", result.run_id)
    assert len(runs_of(ledger, MODEL)) == 1
    names = [b.name for b in container.list_blobs(name_starts_with=f"incoming/{MODEL}/")]
    assert names == [f"incoming/{MODEL}/upload-{dataset_id}.jsonl"]

    code, listing, _ = call(routes.model_datasets, "GET", f"/api/models/{MODEL}/datasets", model=MODEL)
    assert code == 200
    assert [(d["dataset_id"], d["summary"]["total_lines"]) for d in listing["datasets"]] == [(dataset_id, 60)]


def test_gzip_upload_keeps_its_suffix(container):
    code, body, _ = upload(gzip.compress(jsonl(chat_rows(20))))
    assert code == 202 and body["source_blob"].endswith(".jsonl.gz")


def test_too_large_empty_and_bad_requests_get_json_errors_naming_the_field(container, monkeypatch):
    from shared.settings import reset_settings

    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    reset_settings()
    code, body, _ = upload(b"x" * 1001)
    assert code == 413
    assert body["error"]["code"] == "payload_too_large" and body["error"]["field"] == "body"
    assert "MAX_UPLOAD_BYTES" in body["error"]["message"] and body["error"]["limit"] == 1000
    code, body, _ = upload(b"{}", headers={"content-length": "5000"})  # refused from the header alone
    assert code == 413

    code, body, _ = upload(b"", headers={"content-length": "0"})  # said to be empty: it is
    assert (code, body["error"]["code"], body["error"]["field"]) == (400, "empty_body", "body")
    code, body, _ = upload(b"")  # no length: what the Functions host passes for a chunked body
    assert (code, body["error"]["code"]) == (411, "length_required") and "Content-Length" in body["error"]["message"]
    code, body, _ = upload(b"  \n")
    assert code == 400

    code, body, _ = upload(jsonl(chat_rows(2)), model="Support_Bot")
    assert (code, body["error"]["code"], body["error"]["field"]) == (400, "invalid_model_name", "model")

    code, body, _ = upload(gzip.compress(jsonl(chat_rows(5)))[:30])
    assert (code, body["error"]["code"]) == (400, "invalid_body")
    assert "gzip" in body["error"]["message"]
    assert list(container.list_blobs()) == []


def test_status_of_unknown_and_malformed_ids(container):
    code, body, _ = status("0123456789abcdef")
    assert (code, body["error"]["code"], body["error"]["field"]) == (404, "dataset_not_found", "dataset_id")
    code, body, _ = status("not-an-id")
    assert (code, body["error"]["code"]) == (400, "invalid_dataset_id")


@pytest.mark.parametrize("model", ["Bad_Name", "-x"])
def test_status_and_list_validate_the_model(container, model):
    assert status("0123456789abcdef", model=model)[0] == 400
    assert call(routes.model_datasets, "GET", f"/api/models/{model}/datasets", model=model)[0] == 400
