"""The reconciler's decisions and the run lifecycle's rules, as pure functions of records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.ledger import ModelRecord, RunRecord
from shared.reconcile.backstop import poll_due
from shared.reconcile.plan import (
    ABANDON,
    CLEANUP,
    EVALUATE,
    IDLE,
    PROVISIONING,
    SLEEPING,
    SMOKE,
    START,
    deployment_reason,
    next_action,
)
from shared.reconcile.smoke import conversation_prefix, output_text, smoke_payload
from shared.runs.context import is_forward, run_is_newer
from shared.runs.outcome import lineage_tags
from shared.timeutil import iso, utcnow


def model(**fields: Any) -> ModelRecord:
    return ModelRecord(model="bot", **fields)


def progress(step: str, version: str = "2") -> dict[str, Any]:
    return {"step": step, "version": version, "name": f"v{version}", "endpoint": "at-bot", "run_id": "r2"}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (model(), IDLE),  # nothing registered yet
        (model(state="deploying", desired_version="1"), START),  # first version
        (model(state="live", desired_version="1", live_version="1"), IDLE),  # converged
        (model(state="live", desired_version="2", live_version="1"), START),  # new version: blue/green
        (model(state="sleeping", desired_version="2", live_version="1"), SLEEPING),  # waits for a wake
        (model(state="sleeping", desired_version="1", live_version="1", deployment=progress(SMOKE, "1")), SLEEPING),
        (model(state="deploying", desired_version="1", live_version="1"), START),  # woken: redeploy on a new endpoint
        (model(state="failed", desired_version="", live_version=""), IDLE),  # first rollout failed: wait
        (model(state="failed", desired_version="1", live_version="1"), IDLE),  # a woken rollout failed: no retry loop
        (model(state="live", desired_version="2", deployment=progress(PROVISIONING)), PROVISIONING),  # resume
        (model(state="live", desired_version="3", deployment=progress(PROVISIONING)), ABANDON),  # newer wins
        (model(state="live", desired_version="3", deployment=progress(SMOKE)), ABANDON),
        (model(state="live", desired_version="2", deployment=progress(EVALUATE)), EVALUATE),  # resume evaluating
        (model(state="live", desired_version="3", deployment=progress(EVALUATE)), ABANDON),  # newer mid-evaluation
        (model(state="live", desired_version="1", live_version="1"), IDLE),  # held: desired fell back to live
        (model(state="new", desired_version=""), IDLE),  # a first version awaiting approval: nothing to do
        (model(state="live", desired_version="3", deployment=progress(CLEANUP)), CLEANUP),  # traffic moved: finish
    ],
)
def test_next_action(record: ModelRecord, expected: str) -> None:
    assert next_action(record) == expected


def test_unknown_step_is_not_trusted() -> None:
    assert next_action(model(state="live", desired_version="2", live_version="1", deployment={"step": "x"})) == START


def test_quota_errors_explain_the_spare_quota_rule() -> None:
    reason = deployment_reason("OperationFailed: Not enough quota available for Standard_NC6s_v3")
    assert "20% spare quota" in reason and "INSTANCE_TYPE" in reason
    assert deployment_reason("image build failed") == "image build failed"
    assert deployment_reason("") != ""
    already = "Quota exceeded; Azure ML needs 20% spare"
    assert deployment_reason(already) == already


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("queued", "submitted", True),
        ("submitted", "running", True),
        ("running", "submitted", False),  # late news
        ("registered", "running", False),  # a late Running after Completed changes nothing
        ("completed", "completed", False),  # duplicate
        ("running", "failed", True),
        ("failed", "registered", False),
        ("live", "superseded", True),
        ("live", "failed", False),
        ("superseded", "live", False),
        ("deploying", "live", True),
        ("deploying", "held", True),  # the promotion gate
        ("deploying", "awaiting_approval", True),
        ("registered", "held", True),
        ("running", "held", False),  # never before a version exists
        ("awaiting_approval", "held", True),  # rejected
        ("awaiting_approval", "superseded", True),
        ("awaiting_approval", "live", False),  # only an explicit promotion moves it on
        ("awaiting_approval", "deploying", False),
        ("held", "live", False),
        ("held", "superseded", False),  # held is an end, unless a person promotes it
        ("live", "held", False),
    ],
)
def test_runs_only_move_forward(current: str, target: str, allowed: bool) -> None:
    assert is_forward(current, target) is allowed


def test_newer_wins_by_creation_time_then_id() -> None:
    older = RunRecord(model="bot", run_id="bot-b", created_at="2026-11-20T10:00:00.000Z")
    newer = RunRecord(model="bot", run_id="bot-a", created_at="2026-11-20T11:00:00.000Z")
    assert run_is_newer(newer, older) and not run_is_newer(older, newer)
    twin = RunRecord(model="bot", run_id="bot-c", created_at=older.created_at)
    assert run_is_newer(twin, older) != run_is_newer(older, twin)


def test_poll_due_after_quiet_period() -> None:
    now = utcnow()
    run = RunRecord(model="bot", run_id="r", updated_at=iso(now - timedelta(minutes=31)))
    assert poll_due(run, now, 30)
    run.details["last_polled_at"] = iso(now - timedelta(minutes=5))
    assert not poll_due(run, now, 30)
    assert poll_due(run, now, 0)


def test_conversation_prefix_ends_with_the_last_user_message() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
        {"role": "assistant", "content": "fine"},
    ]
    assert conversation_prefix(messages) == messages[:4]
    assert conversation_prefix([{"role": "assistant", "content": "x"}]) is None
    assert conversation_prefix("nope") is None


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ({"output": "Paris"}, "Paris"),
        ("Paris", "Paris"),
        ({"0": "Paris"}, "Paris"),
        ([{"0": "Paris"}], "Paris"),
        ({"output": ""}, ""),
        ({"unexpected": 1}, ""),
        (None, ""),
    ],
)
def test_output_text_parses_every_known_answer_shape(answer: Any, text: str) -> None:
    assert output_text(answer) == text


def test_smoke_payload_is_the_scoring_contract() -> None:
    body = smoke_payload([{"role": "user", "content": "hi"}])
    assert body["input_data"]["input_string"] == [{"role": "user", "content": "hi"}]
    assert body["input_data"]["parameters"]["max_new_tokens"] > 0


def test_lineage_tags_are_strings_and_name_the_origin() -> None:
    run = RunRecord(
        model="bot",
        run_id="bot-abc",
        dataset_id="abc",
        job_name="job1",
        details={"base_model": {"name": "tiny", "version": "3"}},
    )
    tags = lineage_tags(run, {"eval_loss": 1.2345678, "note": "x"})
    assert tags["autotune-run-id"] == "bot-abc"
    assert tags["autotune-dataset-id"] == "abc"
    assert tags["autotune-job-name"] == "job1"
    assert tags["autotune-base-model"] == "tiny" and tags["autotune-base-model-version"] == "3"
    assert tags["metric.eval_loss"] == "1.23457"
    assert "metric.note" not in tags
    assert all(isinstance(v, str) for v in tags.values())
