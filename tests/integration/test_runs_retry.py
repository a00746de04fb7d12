"""Retrying a failed or canceled run (``POST /api/runs/{id}/retry``) through the real trigger function.

The API rules (404, 409 naming the state, 202 with the new attempt) are checked on runs written to the ledger
as the lifecycle leaves them, with a base model that cannot be found so nothing trains. The slow tests use the
real local backend: a run that failed on a bad ``finetune.json`` trains to ``registered`` once the file is fixed
and the run retried; a run whose job failed gets a NEW job on retry, and the old job's late event changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from functions import runs as runs_api
from shared.events import handle_event
from shared.ledger import Ledger, RunRecord
from shared.runs.context import RunContext
from shared.runs.submit import start_run_for_dataset
from tests.integration import test_runs_support as support
from tests.integration.ingest_helpers import no_training  # noqa: F401 - fixture
from tests.integration.test_runs_support import (
    UNTRAINABLE,
    EventSink,
    job_events,
    prepare_dataset,
    run_of,
    upload_blob,
)

event_sink = support.event_sink  # fixtures
runs_ctx = support.runs_ctx


def retry(run_id: str) -> tuple[int, Any]:
    request = func.HttpRequest(
        method="POST", url=f"/api/runs/{run_id}/retry", body=b"", route_params={"run_id": run_id}
    )
    response = runs_api.runs_retry(request)
    return response.status_code, json.loads(response.get_body() or b"null")


def add_run(ledger: Ledger, run_id: str, states: list[str], **fields: Any) -> RunRecord:
    run = RunRecord(model="bot", run_id=run_id, dataset_id=run_id.rsplit("-", 1)[1], **fields)
    for state in states:
        run.transition(state)
    return ledger.create(run)


def states(run: RunRecord) -> list[str]:
    return [state for state, _ in run.timeline]


def test_unknown_run_is_404(ledger: Ledger) -> None:
    status, body = retry("nope-123")
    assert status == 404 and body["error"]["code"] == "run_not_found"


@pytest.mark.parametrize("state", ["queued", "submitted", "running", "registered", "live", "superseded"])
def test_a_run_that_is_not_failed_or_canceled_is_409_naming_its_state(ledger: Ledger, state: str) -> None:
    path = {"queued": ["queued"], "superseded": ["queued", "superseded"]}.get(state, ["queued", state])
    before = add_run(ledger, "bot-aaa", path, job_name="job-a")
    status, body = retry("bot-aaa")
    assert status == 409 and body["error"]["code"] == "run_not_retryable"
    assert f"is {state}" in body["error"]["message"] and "failed or canceled" in body["error"]["message"]
    after = ledger.get(RunRecord, "bot", "bot-aaa")
    assert after is not None and after.timeline == before.timeline and after.job_name == "job-a"


def test_retry_requeues_and_submits_again(ledger: Ledger, no_training: None) -> None:  # noqa: F811
    add_run(ledger, "bot-aaa", ["queued", "submitted", "failed"], job_name="job-a", error="out of quota")
    add_run(ledger, "bot-ccc", ["queued", "canceled"], error="canceled by request")
    status, body = retry("bot-aaa")
    assert status == 202, body
    # Submitted again: this time the (missing) base model stops it, and that is the error now shown.
    assert body["attempt"] == 2 and body["previous_error"] == "out of quota"
    assert body["state"] == "failed" and "out of quota" not in body["error"] and body["job_name"] is None
    run = ledger.get(RunRecord, "bot", "bot-aaa")
    assert run is not None
    assert states(run) == ["queued", "submitted", "failed", "queued", "failed"]
    assert run.details["previous_attempts"][0]["job_name"] == "job-a"
    # Retried again: a third attempt, the history keeps both earlier ones.
    status, body = retry("bot-aaa")
    assert status == 202 and body["attempt"] == 3
    run = ledger.get(RunRecord, "bot", "bot-aaa")
    assert run is not None and len(run.details["previous_attempts"]) == 2
    status, body = retry("bot-ccc")
    assert status == 202 and body["attempt"] == 2 and body["previous_error"] == "canceled by request"


def test_a_retry_waits_for_the_training_lease_and_says_busy_when_it_stays_taken(
    ledger: Ledger,
    no_training: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Corpus retention (or a corpus build) holds the model's training lease: the retry must not check the corpus
    # and requeue meanwhile, or retention could delete the corpus of a run that is about to train again.
    from shared.runs import retry as retry_module
    from shared.runs.waiting import training_lease_name

    add_run(ledger, "bot-ddd", ["queued", "submitted", "failed"], job_name="job-d", error="out of quota")
    monkeypatch.setattr(retry_module, "LEASE_WAIT_SECONDS", 0.6)
    assert ledger.acquire_lease(training_lease_name("bot"), "retention", 60)
    status, body = retry("bot-ddd")
    assert status == 503 and body["error"]["code"] == "model_busy", body
    run = ledger.get(RunRecord, "bot", "bot-ddd")
    assert run is not None and run.state == "failed" and run.details.get("attempt") is None  # untouched
    ledger.release_lease(training_lease_name("bot"), "retention")
    status, body = retry("bot-ddd")
    assert status == 202 and body["attempt"] == 2, body
    # the retry gave the lease back: retention (or the next build) can take it at once
    assert ledger.acquire_lease(training_lease_name("bot"), "retention", 60)


@pytest.mark.slow
def test_fixed_finetune_json_then_retry_trains_to_registered(runs_ctx: RunContext, event_sink: EventSink) -> None:
    ctx = runs_ctx
    upload_blob(ctx, "incoming/retry-bot/finetune.json", json.dumps({"learning_rat": 0.01}).encode())
    dataset = prepare_dataset(ctx, "retry-bot", seed=31)
    run = start_run_for_dataset(ctx.ledger, dataset, ctx)
    assert run.state == "failed" and "learning_rat" in run.error and not run.job_name
    # Delivered again, nothing changes (one run per dataset, forward only) ...
    assert start_run_for_dataset(ctx.ledger, dataset, ctx).timeline == run.timeline

    # ... until the operator fixes the file and retries.
    upload_blob(ctx, "incoming/retry-bot/finetune.json", json.dumps({"learning_rate": 0.001}).encode())
    status, body = retry(run.run_id)
    assert status == 202, body
    assert body["state"] == "submitted" and body["job_name"] and body["attempt"] == 2
    assert "learning_rat" in body["previous_error"] and body["error"] is None
    run = run_of(ctx, run)
    assert ctx.backend.find_job(f"{run.run_id}-attempt2") == run.job_name
    assert run.parameters["learning_rate"] == 0.001

    events = job_events(event_sink, run.job_name, timeout=240)
    assert [e["eventType"] for e in events] == ["Microsoft.MachineLearningServices.RunCompleted"]
    assert handle_event(events[0], ctx, reconcile=False).action != "ignored"
    run = run_of(ctx, run)
    assert run.state == "registered" and run.registered_version == "1"
    assert states(run) == ["waiting", "queued", "failed", "queued", "submitted", "completed", "registered"]


@pytest.mark.slow
def test_retry_gets_a_new_job_and_ignores_the_old_jobs_late_event(runs_ctx: RunContext, event_sink: EventSink) -> None:
    ctx = runs_ctx
    # Rows our checks never saw: the job's validate stage rejects them, so every attempt's job fails.
    dataset = prepare_dataset(ctx, "flaky-bot", seed=32, train_rows=UNTRAINABLE)
    run = start_run_for_dataset(ctx.ledger, dataset, ctx)
    first_job = run.job_name
    old_events = job_events(event_sink, first_job, timeout=180)
    assert handle_event(old_events[0], ctx, reconcile=False).action == "failed"

    status, body = retry(run.run_id)
    assert status == 202 and body["state"] == "submitted", body
    assert body["job_name"] and body["job_name"] != first_job  # never re-adopts the failed job
    run = run_of(ctx, run)
    for event in old_events:  # the old job's news, delivered late, is not the new attempt's
        assert handle_event(event, ctx, reconcile=False).action in ("ignored", "unchanged")
    assert run_of(ctx, run).timeline == run.timeline and run_of(ctx, run).job_name == body["job_name"]

    new_events = job_events(event_sink, run.job_name, timeout=180)
    assert handle_event(new_events[0], ctx, reconcile=False).action == "failed"
    run = run_of(ctx, run)
    assert run.state == "failed" and run.details["attempt"] == 2
    assert [a["job_name"] for a in run.details["previous_attempts"]] == [first_job]
    # Even while a retried run waits in ``queued`` without a job, the old job's event is never adopted.
    waiting = run_of(ctx, run)
    waiting.state, waiting.job_name = "queued", ""
    ctx.ledger.save(waiting)
    assert handle_event(old_events[0], ctx, reconcile=False).action == "ignored"
    assert run_of(ctx, run).job_name == ""


def test_azureml_retry_submits_a_new_named_job_once(ledger: Ledger) -> None:
    """On Azure ML (fake REST) attempt 2 is ``autotune-{run}-attempt2``: not the failed ``autotune-{run}``, and a
    resubmission after a crash adopts attempt 2's job instead of submitting a third."""
    from shared.runs.failure import fail_run
    from shared.runs.retry import retry_run
    from shared.runs.submit import submit_run
    from tests.fakes.aml_rest import FakeAzureML
    from tests.integration.test_azureml_backend import DATASET, RUN, make_backend

    fake = FakeAzureML()
    fake.seed_notebook_world()
    backend = make_backend(fake)
    ctx = RunContext(settings=backend.settings, ledger=ledger, backend=backend)
    run = RunRecord(model="support-bot", run_id=RUN, dataset_id=DATASET)
    run.transition("queued")
    run = submit_run(ctx, ledger.create(run))
    assert run.state == "submitted" and run.job_name == f"autotune-{RUN}"
    fail_run(ctx, run, "the job ran out of quota", failed_step="train")

    retried = retry_run(ctx, RUN)
    assert retried is not None and retried.state == "submitted", retried
    assert retried.job_name == f"autotune-{RUN}-attempt2"
    assert len(fake.find("PUT", "/jobs/")) == 2
    assert make_backend(fake).find_job(f"{RUN}-attempt2") == retried.job_name  # a new process finds it again
    # As if the process had died after Azure ML accepted the job but before the ledger learnt its name:
    crashed = ledger.get(RunRecord, "support-bot", RUN)
    assert crashed is not None
    crashed.state, crashed.job_name = "queued", ""
    adopted = submit_run(ctx, ledger.save(crashed))
    assert adopted.job_name == retried.job_name and adopted.details["adopted"] is True
    assert len(fake.find("PUT", "/jobs/")) == 2
