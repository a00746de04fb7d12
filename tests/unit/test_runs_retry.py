"""A retry is the one move backwards a run can make: failed/canceled -> queued, with the history kept."""

from __future__ import annotations

import pytest

from shared.ledger import RunRecord
from shared.runs.context import is_forward
from shared.runs.retry import previous_job_names, requeue
from shared.runs.submit import job_key


def ended(state: str, **details: object) -> RunRecord:
    run = RunRecord(model="bot", run_id="bot-abc", dataset_id="abc")
    for step in ("queued", "submitted", "running"):
        run.transition(step, at="2026-11-20T10:00:00.000Z")
    run.job_name = "job-1"
    run.studio_url = "file:///job-1"
    run.metrics = {"eval_loss": 9.0}
    run.details.update(failed_step="train", poll_errors=2, progress={"epoch": 1}, base_model={"name": "b"}, **details)
    run.transition(state, error="quota exceeded", at="2026-11-20T11:00:00.000Z")
    return run


@pytest.mark.parametrize("state", ["failed", "canceled"])
def test_requeue_appends_to_the_timeline_and_remembers_the_attempt(state: str) -> None:
    run = ended(state)
    assert job_key(run) == "bot-abc"
    assert requeue(run, at="2026-11-20T12:00:00.000Z")
    assert run.state == "queued" and not run.job_name and not run.error and not run.studio_url and not run.metrics
    assert [s for s, _ in run.timeline] == ["queued", "submitted", "running", state, "queued"]
    assert run.timeline[-1][1] == "2026-11-20T12:00:00.000Z"
    assert run.details["attempt"] == 2
    assert run.details["previous_error"] == "quota exceeded"
    assert run.details["previous_attempts"] == [
        {
            "attempt": 1,
            "state": state,
            "error": "quota exceeded",
            "job_name": "job-1",
            "failed_step": "train",
            "ended_at": "2026-11-20T11:00:00.000Z",
        }
    ]
    # What belonged to the ended attempt is gone; what describes the run stays.
    assert "failed_step" not in run.details and "poll_errors" not in run.details and "progress" not in run.details
    assert run.details["base_model"] == {"name": "b"}
    assert previous_job_names(run) == {"job-1"}
    assert job_key(run) == "bot-abc-attempt2"  # a new job, never the failed one


def test_a_second_retry_counts_on() -> None:
    run = ended("failed")
    requeue(run)
    run.job_name = "job-2"
    run.transition("failed", error="still no quota")
    assert requeue(run)
    assert run.details["attempt"] == 3 and run.details["previous_error"] == "still no quota"
    assert [a["job_name"] for a in run.details["previous_attempts"]] == ["job-1", "job-2"]
    assert job_key(run) == "bot-abc-attempt3"


@pytest.mark.parametrize("state", ["queued", "submitted", "running", "completed", "registered", "live", "superseded"])
def test_only_failed_or_canceled_runs_are_requeued(state: str) -> None:
    run = RunRecord(model="bot", run_id="bot-abc", dataset_id="abc")
    run.transition(state)
    before = (run.state, list(run.timeline), dict(run.details))
    assert not requeue(run)
    assert (run.state, run.timeline, run.details) == before


def test_forward_only_rule_is_unchanged() -> None:
    assert not is_forward("failed", "queued") and not is_forward("canceled", "queued")
