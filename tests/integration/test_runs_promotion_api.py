"""``POST /api/runs/{id}/promote`` and ``/reject`` through the real trigger functions, on runs written to the
ledger as the promotion gate leaves them (the deployments themselves are in test_promotion_gate.py)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from functions import runs as runs_api
from shared.ledger import Ledger, ModelRecord, RunRecord

HELD_EVALUATION = {"decision": "held", "reason": "mean ROUGE-L 0.3 vs 0.7", "policy": "gate", "examples": 4}


def call(action: str, run_id: str) -> tuple[int, Any]:
    request = func.HttpRequest(
        method="POST", url=f"/api/runs/{run_id}/{action}", body=b"", route_params={"run_id": run_id}
    )
    response = getattr(runs_api, f"runs_{action}")(request)
    return response.status_code, json.loads(response.get_body() or b"null")


def add_run(ledger: Ledger, run_id: str, states: list[str], created_at: str, **fields: Any) -> RunRecord:
    run = RunRecord(model="bot", run_id=run_id, dataset_id="d", registered_version=run_id[-1], **fields)
    run.created_at = created_at
    for state in states:
        run.transition(state)
    return ledger.create(run)


GATED = ["queued", "submitted", "completed", "registered", "deploying"]


@pytest.fixture
def live_model(ledger: Ledger) -> ModelRecord:
    add_run(ledger, "bot-1", [*GATED, "live"], "2026-01-01T00:00:00.000Z")
    model = ModelRecord(
        model="bot", state="live", desired_version="1", desired_run_id="bot-1", live_version="1", live_run_id="bot-1"
    )
    model.live_deployment, model.endpoint_name, model.error = "v1", "at-bot", "version 2 (v2) held by the gate: ..."
    return ledger.create(model)


def test_unknown_runs_are_404(ledger: Ledger) -> None:
    for action in ("promote", "reject"):
        status, body = call(action, "nope-123")
        assert status == 404 and body["error"]["code"] == "run_not_found"


def test_promote_a_held_run_makes_its_version_desired_and_records_the_override(
    ledger: Ledger, live_model: ModelRecord
) -> None:
    add_run(ledger, "bot-2", [*GATED, "held"], "2026-01-02T00:00:00.000Z", evaluation=dict(HELD_EVALUATION))
    status, body = call("promote", "bot-2")
    assert status == 202, body
    assert body["state"] == "deploying" and body["decision"] == "overridden"
    assert body["override"]["previous_decision"] == "held" and body["override"]["at"]
    run = ledger.get(RunRecord, "bot", "bot-2")
    assert run is not None and run.evaluation["reason"] == HELD_EVALUATION["reason"]  # what the gate said stays
    assert [s for s, _ in run.timeline][-2:] == ["held", "deploying"]
    model = ledger.get(ModelRecord, "models", "bot")
    assert model is not None and (model.desired_version, model.desired_run_id) == ("2", "bot-2")
    assert model.live_version == "1" and model.error == ""
    # asking again is a 409 naming the state, not a second override
    status, body = call("promote", "bot-2")
    assert status == 409 and body["error"]["code"] == "run_not_promotable" and "deploying" in body["error"]["message"]


@pytest.mark.parametrize("state", ["live", "failed", "registered"])
def test_only_held_or_waiting_runs_are_promoted(ledger: Ledger, live_model: ModelRecord, state: str) -> None:
    path = {"live": [*GATED, "live"], "failed": ["queued", "failed"], "registered": GATED[:4]}[state]
    add_run(ledger, "bot-3", path, "2026-01-03T00:00:00.000Z")
    status, body = call("promote", "bot-3")
    assert status == 409 and f"is {state}" in body["error"]["message"]


def test_an_older_held_run_is_not_promoted_over_a_newer_live_one(ledger: Ledger, live_model: ModelRecord) -> None:
    add_run(ledger, "bot-0", [*GATED, "held"], "2025-12-31T00:00:00.000Z", evaluation=dict(HELD_EVALUATION))
    status, body = call("promote", "bot-0")
    assert status == 409 and "older than run bot-1" in body["error"]["message"]
    model = ledger.get(ModelRecord, "models", "bot")
    assert model is not None and model.desired_run_id == "bot-1"


def test_reject_ends_a_waiting_run_and_nothing_else(ledger: Ledger, live_model: ModelRecord) -> None:
    waiting = {**HELD_EVALUATION, "decision": "awaiting_approval"}
    add_run(ledger, "bot-4", [*GATED, "awaiting_approval"], "2026-01-04T00:00:00.000Z", evaluation=waiting)
    status, body = call("reject", "bot-4")
    assert status == 200, body
    assert body["state"] == "held" and body["decision"] == "rejected" and "rejected by request" in body["error"]
    status, body = call("reject", "bot-4")
    assert (
        status == 409
        and body["error"]["code"] == "run_not_promotable"
        and "awaiting approval" in body["error"]["message"]
    )
    add_run(ledger, "bot-5", [*GATED, "held"], "2026-01-05T00:00:00.000Z", evaluation=dict(HELD_EVALUATION))
    status, body = call("reject", "bot-5")
    assert status == 409 and "is held" in body["error"]["message"]
    # a rejected run can still be promoted later (a person changed their mind)
    status, body = call("promote", "bot-4")
    assert status == 202 and body["override"]["previous_decision"] == "rejected"
