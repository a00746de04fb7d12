"""Hugging Face import from datasets saved locally with ``datasets`` (never the Hub): request → 202 → the blob
trigger imports the first N% of each split into incoming/ → that JSONL is prepared like any upload."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from functions import ingest as routes
from shared.ingest import ingest_blob
from shared.ledger import DatasetRecord
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import read_jsonl, runs_of

MODEL = "support-bot"
container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training


def ultrachat(n: int, split: str) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = f"[{split}] How do I pair the autotune remote, attempt {i}?"
        rows.append(
            {
                "prompt": prompt,
                "prompt_id": f"{split}-{i:04d}",
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": f"Hold the pair button for {i % 9 + 2} seconds."},
                ],
            }
        )
    return rows


@pytest.fixture
def hf_root(tmp_path, monkeypatch):
    """HF_LOCAL_DATASETS_DIR with two datasets: one saved with save_to_disk, one as plain data files."""
    import datasets

    root = tmp_path / "hf"
    saved = datasets.DatasetDict(
        {
            "train_sft": datasets.Dataset.from_list(ultrachat(40, "train")),
            "test_sft": datasets.Dataset.from_list(ultrachat(20, "test")),
        }
    )
    saved.save_to_disk(str(root / "acme" / "support_chats"))
    files = root / "acme" / "files"
    files.mkdir(parents=True)
    for split, n in (("train", 30), ("test", 10)):
        (files / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ultrachat(n, split)))
    monkeypatch.setenv("HF_LOCAL_DATASETS_DIR", str(root))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    from shared.settings import reset_settings

    reset_settings()
    return root


def post_import(body, model: str = MODEL):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = func.HttpRequest(method="POST", url=f"/api/models/{model}/imports", body=raw, route_params={"model": model})
    response = routes.model_imports.build().get_user_function()(req)
    return response.status_code, json.loads(response.get_body())


def get_import(import_id: str):
    req = func.HttpRequest(
        method="GET",
        url=f"/api/models/{MODEL}/imports/{import_id}",
        body=b"",
        route_params={"model": MODEL, "import_id": import_id},
    )
    response = routes.model_import.build().get_user_function()(req)
    return response.status_code, json.loads(response.get_body())


def test_import_of_a_saved_dataset_end_to_end(container, ledger, hf_root, no_training):
    request = {
        "dataset": "acme/support_chats",
        "subset": None,
        "train_split": "train_sft",
        "test_split": "test_sft",
        "percent": 50,
    }
    code, body = post_import(request)
    assert code == 202 and body["state"] == "pending"
    import_id = body["import_id"]
    assert body["status_url"] == f"/api/models/{MODEL}/imports/{import_id}"
    assert get_import(import_id)[1]["state"] == "pending"
    assert post_import(request)[0] == 200  # the same request again: one import

    request_blob = container.get_blob_client(f"incoming/{MODEL}/imports/{import_id}.import.json")
    result = ingest_blob(request_blob)  # the blob trigger sees the request
    assert result.action == "imported"
    code, status = get_import(import_id)
    assert code == 200 and status["state"] == "done" and status["rows"] == 30  # 50% of 40 + 50% of 20
    jsonl_name = status["blob"]
    assert jsonl_name.startswith(f"incoming/{MODEL}/hf-acme-support-chats-")
    rows = read_jsonl(container, jsonl_name)
    assert [r["prompt_id"] for r in rows[:2]] == ["train-0000", "train-0001"]
    assert sum(r["prompt_id"].startswith("test-") for r in rows) == 10

    # committing the JSONL fires the trigger again: it is prepared like any upload, as the dataset the status names
    prepared = ingest_blob(container.get_blob_client(jsonl_name))
    assert prepared.action == "prepared" and prepared.dataset_id == status["dataset_id"]
    assert ledger.get(DatasetRecord, MODEL, prepared.dataset_id).report["format"] == "ultrachat"
    assert len(runs_of(ledger, MODEL)) == 1

    assert ingest_blob(request_blob).action == "existing"  # the request delivered twice: not imported again
    assert len(list(container.list_blobs(name_starts_with=f"incoming/{MODEL}/hf-"))) == 1


def test_import_of_plain_data_files_with_load_dataset(container, hf_root):
    code, body = post_import({"dataset": "acme/files", "train_split": "train", "test_split": "test", "percent": 20})
    assert code == 202
    blob = container.get_blob_client(f"incoming/{MODEL}/imports/{body['import_id']}.import.json")
    assert ingest_blob(blob).action == "imported"
    status = get_import(body["import_id"])[1]
    assert status["rows"] == 6 + 2  # the first 20% of 30 and of 10


def test_a_failed_import_says_why_and_can_be_requested_again(container, hf_root):
    request = {"dataset": "acme/support_chats", "train_split": "no_such_split"}
    code, body = post_import(request)
    assert code == 202
    blob = container.get_blob_client(f"incoming/{MODEL}/imports/{body['import_id']}.import.json")
    assert ingest_blob(blob).action == "failed"
    status = get_import(body["import_id"])[1]
    assert status["state"] == "failed" and "no_such_split" in status["error"] and "train_sft" in status["error"]
    assert post_import(request)[0] == 202  # a failed import may be retried


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataset": "acme/x", "percent": 0}, "percent"),
        ({"dataset": "acme/x", "percent": 101}, "percent"),
        ({"dataset": "acme/x", "percent": 2.5}, "percent"),
        ({"dataset": "../etc/passwd"}, "dataset"),
        ({"dataset": ""}, "dataset"),
        ({"dataset": "acme/x", "split": "train"}, "split"),
        ({"dataset": "acme/x", "train_split": "a b"}, "train_split"),
        ({"dataset": "acme/x", "test_split": 3}, "test_split"),
        ({"dataset": "acme/x", "subset": ["a"]}, "subset"),
        ([1, 2], "body"),
    ],
)
def test_bad_import_requests_name_the_field(container, body, field):
    code, answer = post_import(body)
    assert code == 400 and answer["error"]["field"] == field


def test_import_request_errors_for_json_and_model(container):
    assert post_import(b"{nope")[1]["error"]["field"] == "body"
    assert post_import({"dataset": "a/b"}, model="Nope!")[1]["error"]["field"] == "model"
    assert get_import("0123456789abcdef")[0] == 404
    assert get_import("zzz")[0] == 400
