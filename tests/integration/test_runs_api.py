"""The runs API through its real trigger functions (func.HttpRequest in, JSON out) against Azurite.

No training here: runs are written to the ledger as the lifecycle would leave them, so listing, paging,
filtering, detail and the cancel rules are checked quickly. Cancelling a real job is in test_runs_lifecycle.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import azure.functions as func
import pytest

from functions import runs as runs_api
from shared.ledger import DatasetRecord, Ledger, RunRecord


def call(fn: Any, url: str, *, method: str = "GET", params: dict[str, str] | None = None, **route: str) -> Any:
    request = func.HttpRequest(method=method, url=url, body=b"", params=params or {}, route_params=route)
    response = fn(request)
    return response.status_code, json.loads(response.get_body() or b"null")


def add_run(ledger: Ledger, model: str, run_id: str, created_at: str, states: list[str], **fields: Any) -> RunRecord:
    run = RunRecord(model=model, run_id=run_id, dataset_id=run_id.rsplit("-", 1)[1], created_at=created_at, **fields)
    for index, state in enumerate(states):
        run.transition(state, at=f"{created_at[:17]}{index:02d}.000Z")
    return ledger.create(run)


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    add_run(
        ledger,
        "bot",
        "bot-aaa",
        "2026-11-20T10:00:00.000Z",
        ["queued", "submitted", "running", "failed"],
        error="the job ran out of memory",
        job_name="job-a",
        studio_url="file:///a",
    )
    add_run(
        ledger,
        "bot",
        "bot-bbb",
        "2026-11-21T10:00:00.000Z",
        ["queued", "submitted", "completed", "registered", "deploying", "live"],
        job_name="job-b",
        studio_url="file:///b",
        registered_model="autotune-bot",
        registered_version="1",
        metrics={"eval_loss": 0.5},
    )
    add_run(ledger, "other", "other-ccc", "2026-11-22T10:00:00.000Z", ["queued"])
    ledger.create(
        DatasetRecord(
            model="bot",
            dataset_id="bbb",
            state="prepared",
            prefix="datasets/bot/bbb/",
            report={
                "total_lines": 31,
                "train": 26,
                "test": 4,
                "rejected": 1,
                "reasons": {"duplicate": 1},
                "first_rejections": [{"line": 7, "reason": "duplicate"}],
                "tokens_per_example": {"p50": 40},
            },
        )
    )
    return ledger


def test_list_newest_first_and_paged(seeded: Ledger) -> None:
    status, body = call(runs_api.runs_list, "/api/runs", params={"limit": "2"})
    assert status == 200
    assert [r["run_id"] for r in body["runs"]] == ["other-ccc", "bot-bbb"]
    assert body["continuation"]
    status, page2 = call(runs_api.runs_list, "/api/runs", params={"limit": "2", "continuation": body["continuation"]})
    assert status == 200
    assert [r["run_id"] for r in page2["runs"]] == ["bot-aaa"]
    assert page2["continuation"] is None


def test_list_filters_by_model_and_state(seeded: Ledger) -> None:
    _, body = call(runs_api.runs_list, "/api/runs", params={"model": "bot"})
    assert [r["run_id"] for r in body["runs"]] == ["bot-bbb", "bot-aaa"]
    _, body = call(runs_api.runs_list, "/api/runs", params={"model": "bot", "state": "failed"})
    assert [r["run_id"] for r in body["runs"]] == ["bot-aaa"]
    assert body["runs"][0]["error"] == "the job ran out of memory"
    _, body = call(runs_api.runs_list, "/api/runs", params={"state": "queued"})
    assert [r["run_id"] for r in body["runs"]] == ["other-ccc"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"state": "exploded"}, "state"),
        ({"model": "Not A Model"}, "model"),
        ({"continuation": "%%%garbage"}, "continuation"),
        ({"continuation": base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()}, "continuation"),
    ],
)
def test_list_rejects_bad_parameters(seeded: Ledger, params: dict[str, str], field: str) -> None:
    status, body = call(runs_api.runs_list, "/api/runs", params=params)
    assert status == 400
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] == field


def test_detail_has_timeline_dataset_job_metrics_and_version(seeded: Ledger) -> None:
    status, body = call(runs_api.runs_get, "/api/runs/bot-bbb", run_id="bot-bbb")
    assert status == 200
    assert [step["state"] for step in body["timeline"]] == [
        "queued",
        "submitted",
        "completed",
        "registered",
        "deploying",
        "live",
    ]
    assert all(step["at"] for step in body["timeline"])
    assert body["dataset"]["summary"] == {
        "total_lines": 31,
        "train": 26,
        "test": 4,
        "rejected": 1,
        "reasons": {"duplicate": 1},
    }
    assert body["dataset"]["report_blob"] == "datasets/bot/bbb/report.json"
    assert body["job"]["name"] == "job-b" and body["job"]["studio_url"] == "file:///b"
    assert body["metrics"] == {"eval_loss": 0.5}
    assert body["registered"] == {"model": "autotune-bot", "version": "1"}
    assert body["error"] is None


def test_detail_of_failed_run_says_why(seeded: Ledger) -> None:
    status, body = call(runs_api.runs_get, "/api/runs/bot-aaa", run_id="bot-aaa")
    assert status == 200
    assert body["state"] == "failed" and body["error"] == "the job ran out of memory"
    assert body["dataset"] is None  # no dataset record for it: answered, not an error


def test_unknown_run_is_404(seeded: Ledger) -> None:
    status, body = call(runs_api.runs_get, "/api/runs/nope-123", run_id="nope-123")
    assert status == 404 and body["error"]["code"] == "run_not_found"
    status, body = call(runs_api.runs_cancel, "/api/runs/nope-123/cancel", method="POST", run_id="nope-123")
    assert status == 404


def test_cancel_rules(seeded: Ledger) -> None:
    status, body = call(runs_api.runs_cancel, "/api/runs/bot-bbb/cancel", method="POST", run_id="bot-bbb")
    assert status == 409 and "live" in body["error"]["message"]
    # A run still queued has no job yet: cancelling it needs no platform call.
    status, body = call(runs_api.runs_cancel, "/api/runs/other-ccc/cancel", method="POST", run_id="other-ccc")
    assert status == 202 and body["state"] == "canceled"
    run = seeded.get(RunRecord, "other", "other-ccc")
    assert run is not None and run.state == "canceled" and run.error == "canceled by request"
    status, _ = call(runs_api.runs_cancel, "/api/runs/other-ccc/cancel", method="POST", run_id="other-ccc")
    assert status == 409
