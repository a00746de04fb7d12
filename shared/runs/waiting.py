"""Moving a ``waiting`` run on: debounce, the corpus, single flight, the daily budget, then submission.

Why the checks come in this order: data that is still arriving should join the run (debounce: nothing else is
worth doing yet); an empty corpus, or one the model already trained on, needs no job at all; the corpus is built
next, before a job in flight ends, so the follow-up is submitted the moment it may be; then at most one job per
model is in flight (``ON_NEW_DATA``: wait for it, or cancel it), and at most ``MAX_RUNS_PER_MODEL_PER_DAY`` jobs
start per model and UTC day. Whatever holds the run back is written on it (``details.waiting_reason``, with
``details.not_before`` when a time is known), so ``status RUN`` says why it waits.

Everything here runs under the lease ``train:{model}`` (one advancer per model) and is idempotent: a reconcile
tick (``shared.reconcile.backstop``), ingestion, the datasets API and a job's end all call ``advance_model``, and a
crash anywhere resumes on the next call: the corpus build from its last checkpoint, a built corpus from its
manifest, a run left ``queued`` by the backstop's submission (which adopts a job already accepted).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from shared.corpus import CorpusDataError, CorpusOptions, Selection, build_corpus, read_manifest, select
from shared.ledger import DatasetRecord, RunRecord, TrainingRecord
from shared.runs.context import JOB_ACTIVE, RunContext, mutate_run, new_owner, run_ids
from shared.runs.failure import fail_run
from shared.runs.submit import submit_or_leave_queued
from shared.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

LEASE_SECONDS = 600.0  # longer than one build call (BUILD_SECONDS plus one member dataset)
BUILD_SECONDS = 120.0  # corpus materialising per call (at least one member); a bigger corpus goes on next tick
CORPUS_DATASETS_KEPT = 200  # member datasets listed on the run record (the manifest lists them all)
ENDED_QUIETLY = ("failed", "canceled", "waiting")  # runs whose corpus was never (fully) trained


def training_lease_name(model: str) -> str:
    """The lease that serialises a model's corpus selection and building (held here; retention takes it too)."""
    return f"train:{model}"


def advance_model(ctx: RunContext, model: str, *, build_seconds: float | None = BUILD_SECONDS) -> dict[str, str]:
    """Move the model's waiting runs on as far as they can go now; returns ``{run_id: what happened}`` for the
    runs that changed (submitted, ended, or a new reason to wait).

    ``build_seconds=None`` never builds a corpus (callers that must answer quickly: a job event); the next
    reconcile tick does.
    """
    waiting = sorted(
        ctx.ledger.query_eq(RunRecord, PartitionKey=model, state="waiting"), key=lambda r: (r.created_at, r.run_id)
    )
    if not waiting:
        return {}
    owner = new_owner("advance")
    lease = training_lease_name(model)
    if not ctx.ledger.acquire_lease(lease, owner, LEASE_SECONDS):
        return {}  # another worker is advancing this model right now
    try:
        done: dict[str, str] = {}
        for run in waiting:
            fresh = ctx.ledger.get(RunRecord, model, run.run_id)
            if fresh is not None and fresh.state == "waiting":
                action = _advance(ctx, fresh, build_seconds)
                if action:
                    done[run.run_id] = action
        return done
    finally:
        ctx.ledger.release_lease(lease, owner)


def _advance(ctx: RunContext, run: RunRecord, build_seconds: float | None) -> str:
    settings = ctx.settings
    now = utcnow()
    generation = run.details.get("generation", 0)
    last_change = parse_iso(run.details.get("last_change_at")) or parse_iso(run.created_at) or now
    due = last_change + timedelta(seconds=settings.training_debounce_seconds)
    if now < due:
        reason = (
            f"gathering data: submitted at {iso(due)} unless more data arrives first "
            f"(TRAINING_DEBOUNCE_SECONDS={settings.training_debounce_seconds:g})"
        )
        return _wait(ctx, run, reason, until=due)
    records = ctx.ledger.query_eq(DatasetRecord, PartitionKey=run.model)
    selection = select(run.model, records, CorpusOptions.from_settings(settings), now)
    if not selection.members:
        why = f"; left out: {_left_out_text(selection)}" if selection.left_out else ""
        return _end(ctx, run, "canceled", f"no dataset to train on: the model's corpus is empty{why}")
    others = [r for r in ctx.ledger.query_eq(RunRecord, PartitionKey=run.model) if r.run_id != run.run_id]
    trained = last_trained(others)
    if trained is not None and trained.corpus.get("corpus_id") == selection.corpus_id:
        reason = f"nothing new to train: run {trained.run_id} ({trained.state}) trains on this very corpus"
        return _end(ctx, run, "canceled", f"{reason} ({selection.corpus_id})")
    manifest = _built(ctx, run, selection, build_seconds)
    if isinstance(manifest, str):
        return manifest
    problem = _too_small(manifest, settings)
    if problem:
        return _end(ctx, run, "failed", problem)
    in_flight = [r for r in others if r.state in JOB_ACTIVE]
    if in_flight:
        if settings.on_new_data == "wait":
            names = ", ".join(f"run {r.run_id} ({r.state})" for r in in_flight)
            reason = (
                f"a job is running ({names}); submitted when it ends, with the corpus as it is then (ON_NEW_DATA=wait)"
            )
            return _wait(ctx, run, reason)
        _cancel_in_flight(ctx, run, in_flight)
    budget = settings.max_runs_per_model_per_day
    if budget:
        today = jobs_submitted_on(others, now)
        if today >= budget:
            tomorrow = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
            reason = (
                f"MAX_RUNS_PER_MODEL_PER_DAY ({budget}) reached: {today} training jobs submitted today (UTC); "
                f"submitted after {iso(tomorrow)}, the data is kept"
            )
            return _wait(ctx, run, reason, until=tomorrow)
    return _submit(ctx, run, selection, manifest, generation)


def _built(ctx: RunContext, run: RunRecord, selection: Selection, build_seconds: float | None) -> dict[str, Any] | str:
    """The corpus's manifest once it is complete, else what was done towards it (a waiting action)."""
    from shared.storage import blob_service

    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    manifest = read_manifest(container, run.model, selection.corpus_id)
    if manifest is not None:
        return manifest
    total = len(selection.members)
    if build_seconds is None:
        return _wait(ctx, run, f"corpus {selection.corpus_id} ({total} datasets) is built on the next reconcile tick")
    try:
        result = build_corpus(container, selection, budget_seconds=build_seconds)
    except CorpusDataError as exc:
        hint = f"exclude that dataset (DELETE /api/models/{run.model}/datasets/{{dataset_id}}) or upload its data again"
        return _end(ctx, run, "failed", f"the corpus cannot be built: {exc}; {hint}")
    if result.manifest is not None:
        return result.manifest
    reason = f"building corpus {selection.corpus_id}: {result.members_done} of {total} datasets merged"
    return _wait(ctx, run, reason, building={"corpus_id": selection.corpus_id, "done": result.members_done})


def _too_small(manifest: dict[str, Any], settings: Any) -> str:
    if manifest["train"] < settings.min_train_rows:
        return (
            f"the corpus has {manifest['train']} training conversation(s) after deduplication; at least "
            f"{settings.min_train_rows} are needed (MIN_TRAIN_ROWS)"
        )
    if manifest["test"] < 1:
        return "the corpus has no held-out conversation (TEST_SPLIT_PERCENT by hash); add conversations"
    return ""


def _submit(ctx: RunContext, run: RunRecord, selection: Selection, manifest: dict[str, Any], generation: int) -> str:
    corpus = corpus_view(manifest)
    newest = selection.newest
    left = False

    def leave(current: RunRecord) -> bool:
        nonlocal left
        # Data that arrived since this call began must not be left behind: look again on the next call.
        left = current.state == "waiting" and current.details.get("generation", 0) == generation
        if left:
            current.corpus = corpus
            current.dataset_id = newest.dataset_id if newest else current.dataset_id
            for key in ("waiting_reason", "not_before", "building"):
                current.details.pop(key, None)
            current.transition("queued")
        return left

    queued = mutate_run(ctx.ledger, run, leave)
    if not left:
        return "changed while its corpus was prepared (new data, or canceled): looked at again next"
    _close(ctx, queued)
    log.info(
        "run %s trains on corpus %s: %d datasets, %d train / %d test rows",
        queued.run_id,
        corpus["corpus_id"],
        len(manifest["datasets"]),
        corpus["train"],
        corpus["test"],
        extra=run_ids(queued),
    )
    submitted = submit_or_leave_queued(ctx, queued)
    return submitted.state


def corpus_view(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a run records of its corpus (its manifest, without the per-dataset details beyond the counts)."""
    datasets = [{k: d.get(k, 0) for k in ("dataset_id", "train", "test")} for d in manifest["datasets"]]
    view = {
        "corpus_id": manifest["corpus_id"],
        "mode": manifest["mode"],
        "datasets": datasets[-CORPUS_DATASETS_KEPT:],
        "train": manifest["train"],
        "test": manifest["test"],
        "duplicates": manifest.get("duplicates", 0),
        "files": {**manifest["files"], "manifest": manifest_blob(manifest)},
    }
    if len(datasets) > CORPUS_DATASETS_KEPT:
        view["datasets_total"] = len(datasets)  # the newest are listed; the manifest has every one
    return view


def manifest_blob(manifest: dict[str, Any]) -> str:
    from shared.corpus import corpus_blob

    return corpus_blob(manifest["model"], manifest["corpus_id"], "manifest.json")


def last_trained(runs: list[RunRecord]) -> RunRecord | None:
    """The newest run that trains or trained on a corpus (in flight or done, not failed or canceled)."""
    candidates = [r for r in runs if r.corpus and r.state not in ENDED_QUIETLY]
    return max(candidates, key=lambda r: (r.created_at, r.run_id), default=None)


def jobs_submitted_on(runs: list[RunRecord], now: datetime) -> int:
    """Training jobs submitted on ``now``'s UTC day (each attempt of a retried run is a job)."""
    day = now.date()
    count = 0
    for run in runs:
        for state, stamp in run.timeline:
            when = parse_iso(stamp) if state == "submitted" else None
            count += when is not None and when.date() == day
    return count


def _wait(
    ctx: RunContext,
    run: RunRecord,
    reason: str,
    *,
    until: datetime | None = None,
    building: dict[str, Any] | None = None,
) -> str:
    """Say on the run why it waits (written only when that changes: a tick that changes nothing writes nothing)."""
    not_before = iso(until) if until else None

    def change(current: RunRecord) -> bool:
        same = current.details.get("waiting_reason") == reason and current.details.get("not_before") == not_before
        if current.state != "waiting" or same:
            return False
        current.details["waiting_reason"] = reason
        if not_before:
            current.details["not_before"] = not_before
        else:
            current.details.pop("not_before", None)
        if building:
            current.details["building"] = building
        current.updated_at = iso()
        return True

    before = run.details.get("waiting_reason")
    mutate_run(ctx.ledger, run, change)
    return "" if before == reason else f"waiting: {reason}"


def _end(ctx: RunContext, run: RunRecord, state: str, reason: str) -> str:
    """End a waiting run that needs no job: ``failed`` (people are told) or ``canceled`` (nothing to do)."""
    if state == "failed":
        ended = fail_run(ctx, run, reason, failed_step="corpus")
    else:

        def change(current: RunRecord) -> bool:
            if current.state != "waiting":
                return False
            current.transition("canceled", error=reason)
            return True

        ended = mutate_run(ctx.ledger, run, change)
    _close(ctx, ended)
    log.info("run %s %s: %s", run.run_id, ended.state, reason, extra=run_ids(run))
    return f"{ended.state}: {reason}"


def _close(ctx: RunContext, run: RunRecord) -> None:
    """The run no longer gathers data: the next change opens a new run."""

    def change(current: TrainingRecord | None) -> TrainingRecord | None:
        if current is None or current.open_run_id != run.run_id:
            return None
        current.open_run_id = ""
        current.updated_at = iso()
        return current

    ctx.ledger.mutate(TrainingRecord, "training", run.model, change)


def _cancel_in_flight(ctx: RunContext, run: RunRecord, in_flight: list[RunRecord]) -> None:
    from shared.runs.views import RunStateError, cancel_run

    for other in in_flight:
        reason = f"canceled: newer data arrived, run {run.run_id} trains on it (ON_NEW_DATA=cancel)"
        try:
            cancel_run(ctx, other.run_id, reason=reason)
        except RunStateError as exc:  # it ended or is busy meanwhile; the next call looks again
            log.info("could not cancel run %s for newer data: %s", other.run_id, exc, extra=run_ids(other))


def _left_out_text(selection: Selection) -> str:
    items = list(selection.left_out.items())
    text = ", ".join(f"{dataset} ({why})" for dataset, why in items[:5])
    return text + (f" and {len(items) - 5} more" if len(items) > 5 else "")


__all__ = ["BUILD_SECONDS", "advance_model", "corpus_view", "jobs_submitted_on", "last_trained"]
