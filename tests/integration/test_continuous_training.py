"""Continuous training against Azurite and the real local backend: data gathers into one run per change, the run
trains on the model's whole corpus, one job per model is in flight, and a day's budget holds.

Uploads go through real ingestion (a blob under ``incoming/``, ``ingest_blob``), jobs really train (the tiny
model, a dozen steps) and post their events to a loopback sink; the tests hand those events to
``handle_event`` as the Event Grid trigger would, and tick the reconciler (``reconcile_all``) as the timer would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions import ingest as ingest_api
from functions import models as models_api
from shared.corpus import CorpusOptions, build_corpus, read_manifest, select
from shared.events import handle_event
from shared.ingest import ingest_blob
from shared.ledger import DatasetRecord, RunRecord
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from shared.runs.create import create_run
from shared.runs.views import cancel_run, run_detail
from shared.runs.waiting import advance_model
from shared.storage import blob_service
from shared.timeutil import iso, utcnow
from tests.integration import test_runs_support as support
from tests.integration.test_runs_support import (
    EventSink,
    conversations,
    job_events,
    make_context,
    prepare_dataset,
    run_of,
    shutdown_backend,
)

event_sink = support.event_sink  # fixture
MODEL = "growing-bot"


@pytest.fixture
def training(app_env: dict[str, str], event_sink: EventSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``training(**settings)``: a context on the real local backend whose jobs post events to the sink."""
    made: list[RunContext] = []

    def make(**env: str) -> RunContext:
        ctx = make_context(monkeypatch, AUTOTUNE_HOST_URL=event_sink.url, **env)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        shutdown_backend(ctx)


def upload(ctx: RunContext, name: str, rows: list[dict[str, Any]]) -> DatasetRecord:
    """Drop a file under ``incoming/{model}/`` and deliver it to ingestion, as the blob trigger does."""
    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    if not container.exists():
        container.create_container()
    client = container.get_blob_client(f"incoming/{MODEL}/{name}")
    client.upload_blob("".join(json.dumps(row) + "\n" for row in rows).encode(), overwrite=True)
    result = ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
    assert result.action == "prepared", result.message
    record = ctx.ledger.get(DatasetRecord, MODEL, result.dataset_id)
    assert record is not None
    return record


def runs(ctx: RunContext) -> list[RunRecord]:
    return sorted(ctx.ledger.query_eq(RunRecord, PartitionKey=MODEL), key=lambda r: (r.created_at, r.run_id))


def members(run: RunRecord) -> list[str]:
    return [d["dataset_id"] for d in run.corpus["datasets"]]


def jobs(ctx: RunContext) -> list[dict[str, Any]]:
    """Every job the local backend was asked to start (its job.json), whatever became of it."""
    found = Path(ctx.settings.local_state_dir).rglob("job.json")
    return [json.loads(path.read_text()) for path in found]


def finish(ctx: RunContext, sink: EventSink, run: RunRecord) -> str:
    """Wait for the run's job to end and deliver its final event; returns the handled action."""
    events = job_events(sink, run.job_name, timeout=300)
    return handle_event(events[0], ctx).action


# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_uploads_coalesce_and_data_arriving_while_a_job_trains_gathers_into_one_follow_up(training, event_sink) -> None:
    # A job of 60 steps: long enough to still be training when the fourth upload arrives.
    ctx = training(TRAINING_DEBOUNCE_SECONDS="4", FINETUNE_PARAMETERS=json.dumps({"max_steps": 60}))
    # Three uploads inside the debounce window: one run, waiting, gathering all three.
    first = [upload(ctx, f"day-{i}.jsonl", conversations(30, seed=100 + i)) for i in range(3)]
    (run,) = runs(ctx)
    assert run.state == "waiting" and "TRAINING_DEBOUNCE_SECONDS=4" in run.details["waiting_reason"]
    assert [ctx.ledger.get(DatasetRecord, MODEL, d.dataset_id).run_id for d in first] == [run.run_id] * 3
    assert len(run.details["changes"]) == 3
    time.sleep(4.2)
    assert reconcile_all(ctx).runs[run.run_id] == "submitted"  # the timer tick after the window
    run = run_of(ctx, run)
    assert run.state == "submitted" and sorted(members(run)) == sorted(d.dataset_id for d in first)
    assert run.dataset_id == first[-1].dataset_id  # the newest member, for views that show one dataset
    (job,) = jobs(ctx)
    assert job["train_path"] == f"datasets/{MODEL}/corpora/{run.corpus['corpus_id']}/train.jsonl"

    # A fourth upload while the job trains: exactly one follow-up run, waiting for the job.
    fourth = upload(ctx, "day-3.jsonl", conversations(30, seed=103))
    time.sleep(4.2)
    reconcile_all(ctx)
    reconcile_all(ctx)  # a second tick changes nothing
    follow_up = [r for r in runs(ctx) if r.run_id != run.run_id]
    assert len(follow_up) == 1 and follow_up[0].state == "waiting"
    assert (
        "a job is running" in follow_up[0].details["waiting_reason"]
        and run.run_id in follow_up[0].details["waiting_reason"]
    )
    assert (
        ingest_blob(  # the same file delivered again: still one follow-up
            blob_service(ctx.settings).get_blob_client(
                ctx.settings.training_container, f"incoming/{MODEL}/day-3.jsonl"
            ),
            settings=ctx.settings,
            ledger=ctx.ledger,
        ).action
        == "existing"
    )
    assert len(runs(ctx)) == 2 and len(jobs(ctx)) == 1
    assert not ctx.backend.get_job(run.job_name).state.terminal  # all of this happened while the job trained

    # The first job ends: its event hands the follow-up to the platform at once, with all four datasets.
    assert finish(ctx, event_sink, run) == "registered"
    ended_at = next(at for state, at in run_of(ctx, run).timeline if state == "completed")
    follow = run_of(ctx, follow_up[0])
    assert follow.state == "submitted", follow.details
    assert sorted(members(follow)) == sorted([*(d.dataset_id for d in first), fourth.dataset_id])
    submitted_at = next(at for state, at in follow.timeline if state == "submitted")
    assert submitted_at >= ended_at
    assert len(jobs(ctx)) == 2
    cancel_run(ctx, follow.run_id)


@pytest.mark.slow
def test_on_new_data_cancel_replaces_the_running_job_with_the_newer_corpus(training) -> None:
    ctx = training(ON_NEW_DATA="cancel", FINETUNE_PARAMETERS=json.dumps({"max_steps": 400}))  # a long job
    first_data = upload(ctx, "a.jsonl", conversations(30, seed=70))
    (first,) = runs(ctx)
    assert first.state == "submitted"
    newer = upload(ctx, "b.jsonl", conversations(30, seed=71))  # while it trains
    first = run_of(ctx, first)
    assert first.state == "canceled" and "ON_NEW_DATA=cancel" in first.error
    assert ctx.backend.get_job(first.job_name).state.value == "canceled"
    second = runs(ctx)[-1]
    assert second.state == "submitted" and sorted(members(second)) == sorted([first_data.dataset_id, newer.dataset_id])
    assert len(jobs(ctx)) == 2
    cancel_run(ctx, second.run_id)


def test_a_conversation_present_in_two_files_counts_once(training) -> None:
    ctx = training(LOCAL_BASE_MODEL="/nonexistent/base-model")  # nothing trains: the corpus is what is checked
    shared_rows = conversations(20, seed=7)
    upload(ctx, "a.jsonl", [*shared_rows, *conversations(20, seed=8)])
    run = runs(ctx)[0]
    upload(ctx, "b.jsonl", [*conversations(20, seed=9), *shared_rows])
    run = run_of(ctx, runs(ctx)[-1])
    manifest = read_manifest(
        blob_service(ctx.settings).get_container_client(ctx.settings.training_container),
        MODEL,
        run.corpus["corpus_id"],
    )
    assert manifest["train"] + manifest["test"] == 60 and manifest["duplicates"] == 20
    assert [d["duplicates"] for d in manifest["datasets"]] == [0, 20]
    assert run.corpus["train"] + run.corpus["test"] == 60


@pytest.mark.slow
def test_excluding_a_dataset_cancels_its_job_and_trains_without_it(training) -> None:
    ctx = training()
    keep = upload(ctx, "keep.jsonl", conversations(30, seed=20))
    (first,) = runs(ctx)
    assert first.state == "submitted"
    drop = upload(ctx, "drop.jsonl", conversations(30, seed=21))  # waits for the first job (single flight)
    second = runs(ctx)[-1]
    assert second.state == "waiting"
    reconcile_all(ctx)

    def exclude(dataset_id: str, method: str = "DELETE", suffix: str = "") -> tuple[int, dict[str, Any]]:
        request = func.HttpRequest(
            method=method,
            url=f"/api/models/{MODEL}/datasets/{dataset_id}{suffix}",
            body=b"",
            route_params={"model": MODEL, "dataset_id": dataset_id},
        )
        handler = ingest_api.model_dataset_include if suffix else ingest_api.model_dataset_exclude
        response = handler(request)
        return response.status_code, json.loads(response.get_body())

    status, body = exclude(first.dataset_id)  # the first run trains on `keep` alone: excluding it ...
    assert status == 200 and body["excluded"] is True and body["state"] == "prepared"
    assert body["gathered_by_run_id"] == second.run_id
    assert run_of(ctx, first).state == "canceled" and "excluded" in run_of(ctx, first).error  # ... stops its job
    assert "built on the next reconcile tick" in run_of(ctx, second).details["waiting_reason"]  # not in a request
    reconcile_all(ctx)
    second = run_of(ctx, second)
    assert second.state == "submitted" and members(second) == [drop.dataset_id]  # trained without it
    detail = run_detail(ctx, second.run_id)
    assert [d["dataset_id"] for d in detail["corpus"]["datasets"]] == [drop.dataset_id]
    assert ctx.ledger.get(DatasetRecord, MODEL, keep.dataset_id).excluded
    assert (
        blob_service(ctx.settings)
        .get_blob_client(  # nothing is deleted
            ctx.settings.training_container, f"{keep.prefix}train.jsonl"
        )
        .exists()
    )

    status, body = exclude("0123456789abcdef")
    assert status == 404 and body["error"]["code"] == "dataset_not_found"
    status, body = exclude("not-an-id")
    assert status == 400 and body["error"]["field"] == "dataset_id"

    status, body = exclude(keep.dataset_id, "POST", "/include")  # included again: gathered, waits for the job
    assert status == 200 and body["excluded"] is False
    reconcile_all(ctx)
    third = run_of(ctx, RunRecord(model=MODEL, run_id=body["gathered_by_run_id"]))
    assert third.state == "waiting" and "a job is running" in third.details["waiting_reason"]
    cancel_run(ctx, second.run_id)
    advance_model(ctx, MODEL)
    third = run_of(ctx, third)
    assert third.state == "submitted" and sorted(members(third)) == sorted([keep.dataset_id, drop.dataset_id])
    cancel_run(ctx, third.run_id)


def test_the_daily_budget_keeps_a_run_waiting_until_the_next_day(training) -> None:
    ctx = training(MAX_RUNS_PER_MODEL_PER_DAY="1", LOCAL_BASE_MODEL="/nonexistent/base-model")
    earlier = RunRecord(model=MODEL, run_id=f"{MODEL}-earlier00000", state="live")
    for state in ("waiting", "queued", "submitted", "completed", "registered", "deploying", "live"):
        earlier.transition(state)  # one job submitted today already
    ctx.ledger.create(earlier)
    data = upload(ctx, "today.jsonl", conversations(30, seed=30))
    (run,) = [r for r in runs(ctx) if r.run_id != earlier.run_id]
    assert run.state == "waiting"
    reason = run.details["waiting_reason"]
    assert "MAX_RUNS_PER_MODEL_PER_DAY (1)" in reason and "the data is kept" in reason
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert run.details["not_before"].startswith(tomorrow + "T00:00:00")
    more = upload(ctx, "later.jsonl", conversations(30, seed=31))  # data keeps gathering meanwhile
    assert run_of(ctx, run).dataset_id == more.dataset_id and len(runs(ctx)) == 2

    # A day later (the earlier job's submission is now yesterday's): the run leaves waiting for submission.
    yesterday = iso(utcnow() - timedelta(days=1))
    earlier = ctx.ledger.get(RunRecord, MODEL, earlier.run_id)
    earlier.timeline = [[state, yesterday] for state, _ in earlier.timeline]
    ctx.ledger.save(earlier)
    advance_model(ctx, MODEL)
    run = run_of(ctx, run)
    assert run.state == "failed" and "LOCAL_BASE_MODEL" in run.error  # handed to submission (no base model here)
    assert [state for state, _ in run.timeline] == ["waiting", "queued", "failed"]
    assert sorted(members(run)) == sorted([data.dataset_id, more.dataset_id])


def test_the_model_view_lists_what_the_model_has_not_trained_on(training) -> None:
    ctx = training(MAX_RUNS_PER_MODEL_PER_DAY="1", LOCAL_BASE_MODEL="/nonexistent/base-model")
    trained = RunRecord(model=MODEL, run_id=f"{MODEL}-trained00000", state="live")
    for state in ("waiting", "queued", "submitted", "completed", "registered", "deploying", "live"):
        trained.transition(state)
    old = upload(ctx, "old.jsonl", conversations(30, seed=60))
    first = run_of(ctx, runs(ctx)[0])  # failed on the missing base model, but it names its corpus
    trained.corpus = first.corpus  # as if that corpus had trained and gone live today
    ctx.ledger.create(trained)
    new = upload(ctx, "new.jsonl", conversations(30, seed=61))
    gone = upload(ctx, "gone.jsonl", conversations(30, seed=62))
    ctx.ledger.mutate(DatasetRecord, MODEL, gone.dataset_id, lambda r: setattr(r, "excluded", True) or r)

    request = func.HttpRequest(method="GET", url=f"/api/models/{MODEL}", body=b"", route_params={"model": MODEL})
    response = models_api.models_get(request)
    assert response.status_code == 200, response.get_body()  # a model with runs but no version yet is shown
    training_view = json.loads(response.get_body())["training"]
    assert training_view["trained"]["run_id"] == trained.run_id
    assert [d["dataset_id"] for d in training_view["pending_datasets"]] == [new.dataset_id]
    assert old.dataset_id not in {d["dataset_id"] for d in training_view["pending_datasets"]}
    assert training_view["left_out"] == {gone.dataset_id: "excluded"}
    waiting = training_view["waiting_run"]
    assert waiting["run_id"] == runs(ctx)[-1].run_id and "MAX_RUNS_PER_MODEL_PER_DAY" in waiting["reason"]


@pytest.mark.slow
def test_a_crash_between_materialising_and_submitting_resumes_without_a_second_job(training) -> None:
    ctx = training()
    dataset = upload(ctx, "first.jsonl", conversations(30, seed=40))
    (trained,) = runs(ctx)
    cancel_run(ctx, trained.run_id)
    # The next change: gathered, then a worker built the corpus and died before the run left waiting.
    more = prepare_dataset(ctx, MODEL, seed=41, rows=30)
    run = create_run(ctx.ledger, more)
    records = ctx.ledger.query_eq(DatasetRecord, PartitionKey=MODEL)
    selection = select(MODEL, records, CorpusOptions.from_settings(ctx.settings), utcnow())
    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    built = build_corpus(container, selection).manifest
    assert built is not None and run_of(ctx, run).state == "waiting"

    report = reconcile_all(ctx)  # the next tick: the built corpus is used as it is, the run submitted once
    assert report.runs[run.run_id] == "submitted"
    run = run_of(ctx, run)
    assert run.corpus["corpus_id"] == selection.corpus_id
    assert read_manifest(container, MODEL, selection.corpus_id)["created_at"] == built["created_at"]
    assert sorted(members(run)) == sorted([dataset.dataset_id, more.dataset_id])
    assert reconcile_all(ctx).runs.get(run.run_id, "") == ""  # and again: nothing more
    assert [job["run_id"] for job in jobs(ctx)].count(run.run_id) == 1

    # A crash one step later (the platform accepted the job, the ledger never heard): the job is adopted.
    cancel_run(ctx, run.run_id)
    crashed = create_run(ctx.ledger, prepare_dataset(ctx, MODEL, seed=42, rows=30))
    advance_model(ctx, MODEL, build_seconds=60)  # built, queued and submitted ...
    crashed = run_of(ctx, crashed)
    job_name = crashed.job_name
    crashed.job_name, crashed.state = "", "queued"  # ... as the ledger would be had the process died mid-submit
    crashed.timeline = crashed.timeline[:-1]
    ctx.ledger.save(crashed)
    assert reconcile_all(ctx).runs[crashed.run_id] == "submit: submitted"
    adopted = run_of(ctx, crashed)
    assert adopted.job_name == job_name and adopted.details["adopted"] is True
    assert [job["run_id"] for job in jobs(ctx)].count(crashed.run_id) == 1
    cancel_run(ctx, crashed.run_id)


@pytest.mark.slow
def test_latest_mode_trains_on_the_newest_dataset_alone(training) -> None:
    ctx = training(CORPUS_MODE="latest")
    older = upload(ctx, "old.jsonl", conversations(30, seed=50))
    cancel_run(ctx, runs(ctx)[0].run_id)
    newest = upload(ctx, "new.jsonl", conversations(30, seed=51))
    run = runs(ctx)[-1]
    assert run.state == "submitted" and members(run) == [newest.dataset_id]
    assert run.corpus["mode"] == "latest" and older.dataset_id not in members(run)
    job = next(job for job in jobs(ctx) if job["run_id"] == run.run_id)
    assert job["train_path"] == f"{newest.prefix}train.jsonl" and job["test_path"] == f"{newest.prefix}test.jsonl"
    assert not list(
        blob_service(ctx.settings)
        .get_container_client(ctx.settings.training_container)
        .list_blobs(name_starts_with=f"datasets/{MODEL}/corpora/{run.corpus['corpus_id']}/train")
    )  # nothing copied: the dataset's own files are the corpus
    cancel_run(ctx, run.run_id)
