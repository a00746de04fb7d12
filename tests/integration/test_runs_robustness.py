"""Faults around a run's job (issue 16): registration per attempt, a completion event the platform contradicts,
and a job adopted after a crash that had already finished.

Azure ML is the fake REST API (``tests/fakes/aml_rest.py``) behind the real ``azure-ai-ml`` client, the ledger a
real Azurite; nothing trains, so each test takes seconds. The local registry is the real MLflow store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.backends.base import ATTEMPT_TAG, RUN_TAG
from shared.events import handle_event
from shared.ledger import Ledger, RunRecord
from shared.runs.context import RunContext
from shared.runs.failure import fail_run
from shared.runs.outcome import complete_run
from shared.runs.retry import retry_run
from shared.runs.submit import submit_run
from tests.conftest import SHARED_DIR
from tests.fakes.aml_rest import FakeAzureML
from tests.integration.test_azureml_backend import DATASET, RUN, make_backend

SAMPLE = SHARED_DIR / "contracts" / "events" / "aml-run-completed.pipeline.eventgrid.json"
MODEL = "support-bot"
# fixture `fake` (tests/conftest.py): the Azure ML world with the notebook's registry, compute and quota


@pytest.fixture
def ctx(fake: FakeAzureML, ledger: Ledger) -> RunContext:
    backend = make_backend(fake)
    return RunContext(settings=backend.settings, ledger=ledger, backend=backend)


def queued_run(ctx: RunContext) -> RunRecord:
    run = RunRecord(model=MODEL, run_id=RUN, dataset_id=DATASET)
    run.transition("queued")
    return ctx.ledger.create(run)


def stored(ctx: RunContext) -> RunRecord:
    run = ctx.ledger.get(RunRecord, MODEL, RUN)
    assert run is not None
    return run


def completed_event(ctx: RunContext, job_name: str) -> dict[str, Any]:
    event = json.loads(SAMPLE.read_text())[0]
    event["topic"] = ctx.settings.workspace_id
    event["data"]["runId"] = job_name
    return event


# -- 16.3: registration is keyed by run AND attempt --------------------------------------------------------------
def test_a_retried_run_registers_its_own_version_not_the_previous_attempts(ctx: RunContext, fake: FakeAzureML):
    run = submit_run(ctx, queued_run(ctx))
    fake.set_job_status(run.job_name, "Completed")
    assert complete_run(ctx, run) == "registered"
    first = stored(ctx)
    assert first.registered_version == "1"
    # Registered, then the deployment failed: the operator retries the run with the same data.
    fail_run(ctx, first, "the deployment failed: quota", failed_step="deploy")
    retried = retry_run(ctx, RUN)
    assert retried is not None and retried.job_name == f"autotune-{RUN}-attempt2"
    fake.set_job_status(retried.job_name, "Completed")
    assert complete_run(ctx, retried) == "registered"
    second = stored(ctx)
    assert second.registered_version == "2"  # the new attempt's model, not attempt 1's version again
    put = fake.find("PUT", "/models/autotune-support-bot/versions/2")[0]
    assert put.body["properties"]["modelUri"].endswith(f"/jobs/{retried.job_name}/outputs/trained_model")
    assert put.body["properties"]["tags"][ATTEMPT_TAG] == "2"
    # Still idempotent per attempt: the same completion delivered again changes nothing.
    assert complete_run(ctx, second) == "unchanged"
    assert len(fake.find("PUT", "/models/")) == 2


def test_the_local_registry_keys_versions_by_run_and_attempt(tmp_path: Path):
    from localml import mlflowstore
    from localml.layout import Layout
    from localml.state import write_json

    layout = Layout(tmp_path / "state")
    for job in ("job-a", "job-b"):
        (layout.job_model(job)).mkdir(parents=True)
        (layout.job_model(job) / "MLmodel").write_text("flavors: {}\n")
        write_json(layout.job(job) / "status.json", {"state": "completed"})
    first = mlflowstore.register(layout, "job-a", "autotune-bot", {RUN_TAG: "bot-1"})  # before attempts were tagged
    second = mlflowstore.register(layout, "job-b", "autotune-bot", {RUN_TAG: "bot-1", ATTEMPT_TAG: "2"})
    assert (first["version"], second["version"]) == ("1", "2")
    assert mlflowstore.register(layout, "job-b", "autotune-bot", {RUN_TAG: "bot-1", ATTEMPT_TAG: "2"}) == second
    assert mlflowstore.register(layout, "job-a", "autotune-bot", {RUN_TAG: "bot-1", ATTEMPT_TAG: "1"}) == first


# -- 16.10: a completion event is confirmed with the platform before anything is registered ----------------------
def test_a_completion_event_the_platform_contradicts_registers_nothing(ctx: RunContext, fake: FakeAzureML):
    run = submit_run(ctx, queued_run(ctx))
    fake.set_job_status(run.job_name, "Running")  # the event is early, stale or misrouted: the job still runs
    outcome = handle_event(completed_event(ctx, run.job_name), ctx, reconcile=False)
    assert outcome.action in ("running", "unchanged")
    assert stored(ctx).state == "running" and not stored(ctx).registered_version
    assert fake.find("PUT", "/models/") == []

    fake.fail_job(run.job_name, "the finetune step ran out of GPU memory")  # it then failed after all
    outcome = handle_event(completed_event(ctx, run.job_name), ctx, reconcile=False)
    assert outcome.action == "failed"
    failed = stored(ctx)
    assert failed.state == "failed" and "out of GPU memory" in failed.error
    assert fake.find("PUT", "/models/") == []


def test_a_completion_event_the_platform_confirms_registers(ctx: RunContext, fake: FakeAzureML):
    run = submit_run(ctx, queued_run(ctx))
    fake.set_job_status(run.job_name, "Completed")
    assert handle_event(completed_event(ctx, run.job_name), ctx, reconcile=False).action == "registered"
    assert stored(ctx).registered_version == "1"


# -- 16.14: a job adopted at submission is acted on at once, not after JOB_POLL_AFTER_MINUTES ----------------------
def crash_before_the_ledger_learnt_the_job(ctx: RunContext) -> RunRecord:
    """Submitted, then the process died before saving the job's name: the run is still ``queued``."""
    crashed = stored(ctx)
    crashed.state, crashed.job_name, crashed.timeline = "queued", "", crashed.timeline[:1]
    return ctx.ledger.save(crashed)


def test_an_adopted_job_that_already_completed_is_registered_at_once(ctx: RunContext, fake: FakeAzureML):
    job = submit_run(ctx, queued_run(ctx)).job_name
    run = crash_before_the_ledger_learnt_the_job(ctx)
    fake.set_job_status(job, "Completed")  # ... and its completion event went out long ago
    adopted = submit_run(ctx, run)
    assert adopted.job_name == job and adopted.details["adopted"] is True
    assert adopted.state == "registered" and adopted.registered_version == "1"
    assert len(fake.find("PUT", "/jobs/")) == 1  # adopted, not trained twice


def test_an_adopted_job_that_already_failed_fails_the_run_with_its_error(ctx: RunContext, fake: FakeAzureML):
    job = submit_run(ctx, queued_run(ctx)).job_name
    run = crash_before_the_ledger_learnt_the_job(ctx)
    fake.fail_job(job, "the validate step found no messages column")
    adopted = submit_run(ctx, run)
    assert adopted.state == "failed" and "no messages column" in adopted.error
    assert adopted.job_name == job


def test_an_adopted_job_still_running_is_recorded_running(ctx: RunContext, fake: FakeAzureML):
    job = submit_run(ctx, queued_run(ctx)).job_name
    run = crash_before_the_ledger_learnt_the_job(ctx)
    fake.set_job_status(job, "Running")
    adopted = submit_run(ctx, run)
    assert adopted.state == "running" and adopted.job_name == job
