"""Retrying a failed or canceled run: the operator's explicit way back to ``queued``.

Why an explicit action: a run's states only move forward, and a corpus identical to the one a model last trained
starts no new run, so once the operator has fixed the cause (a bad ``finetune.json``, a retired ``BASE_MODEL``,
quota) the same data would never train again. A retry is the one move backwards, and only from ``failed`` or
``canceled``: the timeline keeps the history (``queued`` is appended, nothing removed), ``details.attempt`` counts
attempts and ``details.previous_attempts`` keeps each earlier attempt's state, error and job. The new attempt
trains on the same corpus and is submitted as ingestion submits a run (``submit_or_leave_queued``); a run that
ended before it had a corpus (canceled while ``waiting``), or whose corpus retention has deleted since
(``shared.reconcile.corpora``), goes back to ``waiting`` instead and gathers the model's corpus as it is now.
Jobs run under a key that includes the attempt (``submit.job_key``), so the backend starts a NEW job instead of
re-adopting the previous attempt's failed one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.errors import Conflict, RetryLater
from shared.ledger import RunRecord
from shared.runs.context import RunContext, find_run, held_lease, mutate_run, run_ids
from shared.runs.submit import submit_or_leave_queued
from shared.timeutil import iso

log = logging.getLogger(__name__)

RETRYABLE = frozenset({"failed", "canceled"})
LEASE_WAIT_SECONDS = 10.0  # for the model's training lease (a corpus being built or pruned), inside an HTTP request
LEASE_SECONDS = 60.0
# What one attempt leaves in ``details`` that must not leak into the next (submission, polling, progress, cause).
PER_ATTEMPT_DETAILS = (
    "submit_attempts",
    "last_error",
    "last_attempt_at",
    "submitted_at",
    "adopted",
    "failed_step",
    "code",
    "poll_errors",
    "last_polled_at",
    "last_poll_error",
    "progress",
    "loss_history",
)


class RetryStateError(Conflict, RuntimeError):
    """The run is not failed or canceled (the API answers 409 and names its state)."""

    code = "run_not_retryable"


class RetryBusyError(RetryLater, RuntimeError):
    """The model's corpus is being built or pruned right now (the API answers 503: try again in a moment)."""

    code = "model_busy"


@contextmanager
def training_lease(ctx: RunContext, model: str) -> Iterator[None]:
    """Hold the model's training lease, waiting briefly for it. Corpus retention decides what to delete under it,
    so a run's corpus cannot be deleted between the check that it exists and the requeue that makes the run
    unfinished again (from then on retention keeps it)."""
    from shared.runs.waiting import training_lease_name

    with held_lease(ctx, training_lease_name(model), "retry", LEASE_SECONDS, wait=LEASE_WAIT_SECONDS) as held:
        if not held:
            raise RetryBusyError(
                f"model {model} is building or pruning its training corpus right now; retry in a few seconds"
            )
        yield


def requeue(run: RunRecord, at: str | None = None, *, corpus_gone: bool = False) -> bool:
    """Move a failed/canceled ``run`` back to ``queued`` in place, remembering the attempt that ended; to
    ``waiting``, without its corpus, when ``corpus_gone`` (nothing left to train that attempt on).

    Returns False (and changes nothing) for any other state: the forward-only rule holds everywhere else.
    """
    if run.state not in RETRYABLE:
        return False
    attempt = int(run.details.get("attempt", 1) or 1)
    previous: list[dict[str, Any]] = list(run.details.get("previous_attempts") or [])
    previous.append(
        {
            "attempt": attempt,
            "state": run.state,
            "error": run.error,
            "job_name": run.job_name,
            "failed_step": run.details.get("failed_step", ""),
            "ended_at": run.updated_at,
        }
    )
    for key in PER_ATTEMPT_DETAILS:
        run.details.pop(key, None)
    run.details.update(attempt=attempt + 1, previous_attempts=previous, previous_error=run.error)
    run.job_name = ""
    run.error = ""
    run.studio_url = ""
    run.metrics = {}
    run.registered_model = ""
    run.registered_version = ""
    if corpus_gone:
        run.details["previous_corpus_id"] = run.corpus.get("corpus_id", "")
        run.corpus = {}
    run.transition("waiting" if corpus_gone or never_had_a_corpus(run) else "queued", at=at)
    run.details["retried_at"] = run.updated_at
    return True


def never_had_a_corpus(run: RunRecord) -> bool:
    """A run that ended while still waiting (canceled, or no data then): its retry gathers data again."""
    return not run.corpus and any(state == "waiting" for state, _ in run.timeline)


def corpus_gone(ctx: RunContext, run: RunRecord) -> bool:
    """The run's corpus manifest is deleted (retention: ``CORPUS_KEEP``), so its files are, or are about to be."""
    manifest = ((run.corpus or {}).get("files") or {}).get("manifest")
    if not manifest:
        return False  # a run from before corpora, or one that never had one
    from shared.storage import blob_service

    return not blob_service(ctx.settings).get_blob_client(ctx.settings.training_container, manifest).exists()


def previous_job_names(run: RunRecord) -> set[str]:
    """Jobs of the run's earlier attempts: their late events must not be adopted by the new attempt."""
    return {str(item.get("job_name")) for item in run.details.get("previous_attempts") or [] if item.get("job_name")}


def retry_run(ctx: RunContext, run_id: str) -> RunRecord | None:
    """Requeue a failed/canceled run and submit its new attempt. None if there is no such run."""
    run = find_run(ctx.ledger, run_id)
    if run is None:
        return None
    if run.state not in RETRYABLE:
        raise RetryStateError(f"run {run_id} is {run.state}; only failed or canceled runs can be retried")
    stamp = iso()
    with training_lease(ctx, run.model):
        gone = corpus_gone(ctx, run)

        def change(current: RunRecord) -> bool:
            return requeue(current, at=stamp, corpus_gone=gone)

        updated = mutate_run(ctx.ledger, run, change)
    if updated.state not in ("queued", "waiting") or updated.details.get("retried_at") != stamp:
        # Somebody else moved it meanwhile (another retry won the race): say what it is now.
        raise RetryStateError(f"run {run_id} is {updated.state}; it was changed while retrying, look again")
    log.info(
        "run %s retried by request (attempt %s)", updated.run_id, updated.details["attempt"], extra=run_ids(updated)
    )
    if updated.state == "waiting":  # it gathers the model's corpus as it is now, like any waiting run
        from shared.runs.waiting import advance_model

        advance_model(ctx, updated.model, build_seconds=None)  # an HTTP request: the tick builds the corpus
        return ctx.ledger.get(RunRecord, updated.model, updated.run_id) or updated
    return submit_or_leave_queued(ctx, updated)


__all__ = [
    "RETRYABLE",
    "RetryBusyError",
    "RetryStateError",
    "previous_job_names",
    "requeue",
    "retry_run",
    "training_lease",
]
