"""Runs that cannot succeed say why, on the real local backend: bad parameters fail before anything is submitted
(naming the file and line, or the setting); a job that fails reports it with a Failed event and the job's own
error is recorded; a cancelled run cancels its real job. The prepared data is always kept."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from functions import runs as runs_api
from shared.backends.base import JobState
from shared.events import handle_event
from shared.ledger import DatasetRecord
from shared.runs.context import RunContext
from shared.runs.submit import start_run_for_dataset
from tests.integration import test_runs_support as support
from tests.integration.test_runs_support import (
    UNTRAINABLE,
    EventSink,
    job_events,
    make_context,
    prepare_dataset,
    run_of,
    shutdown_backend,
    upload_blob,
    wait_for,
)

event_sink = support.event_sink  # fixtures
runs_ctx = support.runs_ctx


def assert_data_kept(ctx: RunContext, dataset: DatasetRecord) -> None:
    from shared.storage import blob_service

    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    for split in ("train", "test"):
        assert container.get_blob_client(f"{dataset.prefix}{split}.jsonl").exists()
    record = ctx.ledger.get(DatasetRecord, dataset.model, dataset.dataset_id)
    assert record is not None and record.state == "prepared"


def test_malformed_finetune_json_fails_the_run_naming_file_and_line(runs_ctx: RunContext) -> None:
    ctx = runs_ctx
    upload_blob(ctx, "incoming/faq-bot/finetune.json", b'{\n  "learning_rate": 0.001,\n  "num_train_epochs": ,\n}\n')
    dataset = prepare_dataset(ctx, "faq-bot", seed=11)
    run = start_run_for_dataset(ctx.ledger, dataset, ctx)
    assert run.state == "failed"
    assert "incoming/faq-bot/finetune.json" in run.error and "line 3" in run.error
    assert not run.job_name and ctx.backend.find_job(run.run_id) is None
    assert_data_kept(ctx, dataset)
    # Delivered again (blob trigger retry): still the same failed run, still nothing submitted.
    assert start_run_for_dataset(ctx.ledger, dataset, ctx).timeline == run.timeline


def test_unknown_parameter_in_finetune_json_is_named(runs_ctx: RunContext) -> None:
    ctx = runs_ctx
    upload_blob(ctx, "incoming/faq-bot/finetune.json", json.dumps({"learning_rat": 0.01}).encode())
    run = start_run_for_dataset(ctx.ledger, prepare_dataset(ctx, "faq-bot", seed=12), ctx)
    assert run.state == "failed"
    assert "learning_rat" in run.error and "learning_rate" in run.error  # the name and the likely fix
    assert "finetune.json" in run.error


def test_bad_operator_setting_names_the_setting(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_context(monkeypatch, FINETUNE_PARAMETERS=json.dumps({"num_train_epochs": "many"}))
    try:
        run = start_run_for_dataset(ctx.ledger, prepare_dataset(ctx, "faq-bot", seed=13), ctx)
        assert run.state == "failed"
        assert "FINETUNE_PARAMETERS" in run.error and "num_train_epochs" in run.error
    finally:
        shutdown_backend(ctx)


def test_failed_job_is_reported_by_its_event_with_the_jobs_error(runs_ctx: RunContext, event_sink: EventSink) -> None:
    ctx = runs_ctx
    # Rows our checks never saw (written straight into the split): the job's validate stage rejects them.
    dataset = prepare_dataset(ctx, "broken-bot", seed=14, train_rows=UNTRAINABLE)
    run = start_run_for_dataset(ctx.ledger, dataset, ctx)
    assert run.state == "submitted"
    events = job_events(event_sink, run.job_name, timeout=180)
    assert events[0]["eventType"].endswith("RunStatusChanged")
    assert events[0]["data"]["runStatus"].lower() == "failed"
    outcome = handle_event(events[0], ctx)
    assert outcome.action == "failed"
    run = run_of(ctx, run)
    assert run.state == "failed"
    assert "no usable conversation" in run.error  # the job's own message, fetched from the backend
    assert run.details["failed_step"] == "train"
    assert handle_event(events[0], ctx).action == "unchanged"  # redelivered: nothing new
    assert_data_kept(ctx, dataset)


def test_cancel_stops_the_real_job(runs_ctx: RunContext, event_sink: EventSink) -> None:
    ctx = runs_ctx
    run = start_run_for_dataset(ctx.ledger, prepare_dataset(ctx, "cancel-bot", seed=15, rows=64), ctx)
    assert run.state == "submitted"
    request = func.HttpRequest(
        method="POST", url=f"/api/runs/{run.run_id}/cancel", body=b"", route_params={"run_id": run.run_id}
    )
    response = runs_api.runs_cancel(request)
    assert response.status_code == 202, response.get_body()
    assert json.loads(response.get_body())["state"] == "canceled"
    assert ctx.backend.get_job(run.job_name).state == JobState.CANCELED
    run = run_of(ctx, run)
    assert run.state == "canceled" and run.error == "canceled by request"
    events = job_events(event_sink, run.job_name, timeout=60)
    assert [handle_event(event, ctx).action for event in events] == ["unchanged"] * len(events)
    assert run_of(ctx, run).timeline == run.timeline
    wait_for(lambda: ctx.backend.get_job(run.job_name).state.terminal, 30, "the job to stop")
