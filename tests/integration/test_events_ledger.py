"""Event handling decisions that need only the ledger (Azurite): whose job it is, and what to do when another
worker holds the run. No platform call is made in these cases, so no backend is involved."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from shared import events
from shared.events import RetryLaterError, handle_event
from shared.ledger import Ledger, RunRecord
from shared.runs.context import RunContext
from tests.conftest import SHARED_DIR

SAMPLE = SHARED_DIR / "contracts" / "events" / "aml-run-completed.pipeline.eventgrid.json"


@pytest.fixture
def ctx(settings: Any, ledger: Ledger) -> RunContext:
    return RunContext(settings=settings, ledger=ledger)


def completed_event(ctx: RunContext, job_name: str) -> dict[str, Any]:
    event = json.loads(SAMPLE.read_text())[0]
    event["topic"] = ctx.settings.workspace_id
    event["data"]["runId"] = job_name
    return event


def test_completion_while_another_worker_holds_the_run_is_redelivered(
    ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "BUSY_WAIT_SECONDS", 1.0)  # the other worker stays busy past the wait
    run = RunRecord(model="bot", run_id="bot-abc", job_name="quick_job_1", state="submitted")
    ctx.ledger.create(run)
    assert ctx.ledger.acquire_lease("run:bot-abc", "the-submitter", 60)
    with pytest.raises(RetryLaterError):
        handle_event(completed_event(ctx, "quick_job_1"), ctx)
    stored = ctx.ledger.get(RunRecord, "bot", "bot-abc")
    assert stored is not None and stored.state == "submitted"


def test_a_duplicate_completion_waits_for_the_worker_handling_the_first_and_is_acknowledged(ctx: RunContext) -> None:
    """The storm case: the first delivery is registering the run; a duplicate waits for it instead of failing."""
    run = ctx.ledger.create(RunRecord(model="bot", run_id="bot-abc", job_name="quick_job_1", state="submitted"))
    assert ctx.ledger.acquire_lease("run:bot-abc", "the-first-delivery", 60)

    def first_delivery_finishes() -> None:
        time.sleep(1.5)
        done = ctx.ledger.get(RunRecord, "bot", "bot-abc")
        done.transition("completed")
        done.transition("registered")
        ctx.ledger.save(done)
        ctx.ledger.release_lease("run:bot-abc", "the-first-delivery")

    worker = threading.Thread(target=first_delivery_finishes)
    worker.start()
    outcome = handle_event(completed_event(ctx, "quick_job_1"), ctx)
    worker.join()
    assert outcome.action == "unchanged" and outcome.run_id == run.run_id


def test_a_job_we_never_submitted_is_ignored(ctx: RunContext) -> None:
    ctx.ledger.create(RunRecord(model="bot", run_id="bot-abc", job_name="our_job", state="submitted"))
    outcome = handle_event(completed_event(ctx, "their_job"), ctx)
    assert outcome.action == "ignored" and "not one this app submitted" in outcome.reason


def test_our_run_tag_adopts_a_job_whose_name_was_never_saved(ctx: RunContext) -> None:
    """Submitted, then the process died before the ledger learnt the job's name: the event names it."""
    ctx.ledger.create(RunRecord(model="bot", run_id="bot-abc", state="queued"))
    event = completed_event(ctx, "orphan_job")
    event["eventType"] = "Microsoft.MachineLearningServices.RunStatusChanged"
    event["data"]["runStatus"] = "Running"
    event["data"]["runTags"] = {"autotune-run-id": "bot-abc", "autotune-model": "bot"}
    outcome = handle_event(event, ctx)
    assert outcome.action == "running"
    stored = ctx.ledger.get(RunRecord, "bot", "bot-abc")
    assert stored is not None and stored.job_name == "orphan_job"
    assert [state for state, _ in stored.timeline] == ["submitted", "running"]
    assert handle_event(event, ctx).action == "unchanged"
