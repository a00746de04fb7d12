"""What happens when a training job reports: running, failed/canceled, or completed -> registered -> desired.

Why one module for events and polling alike: the Event Grid handler and the reconciler's backstop poll observe
the same facts (a job's state), so they share one idempotent reaction. Every function here can run any number
of times, in any order, from several processes: runs only move forward (``is_forward``), registration is
idempotent per run attempt (the backend finds the version tagged with our run id and attempt), and a model's
desired version only ever moves to a *newer* run ("newer wins", by run creation time).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.backends.base import (
    ATTEMPT_TAG,
    CORPUS_TAG,
    DATASET_TAG,
    MODEL_TAG,
    RUN_TAG,
    BackendError,
    JobState,
    JobStatus,
)
from shared.ledger import ModelRecord, RunRecord
from shared.notify import RUN_SUCCEEDED, publish
from shared.runs.context import (
    JOB_ACTIVE,
    RunContext,
    advance_run,
    is_forward,
    mutate_run,
    new_owner,
    run_ids,
    run_is_newer,
)
from shared.runs.failure import fail_run, user_reason
from shared.timeutil import iso

log = logging.getLogger(__name__)

REGISTER_LEASE_SECONDS = 300
JOB_NAME_TAG = "autotune-job-name"
BASE_MODEL_TAG = "autotune-base-model"
BASE_VERSION_TAG = "autotune-base-model-version"


def apply_job_state(
    ctx: RunContext,
    run: RunRecord,
    state: JobState,
    *,
    error: str = "",
    source: str = "",
    status: JobStatus | None = None,
) -> str:
    """React to one observation of the run's job; returns what changed (``unchanged`` for repeats/late news).

    ``status`` is the platform's own answer when the caller just read it (a poll, an adoption): a completion
    seen there needs no second confirmation.
    """
    if state == JobState.RUNNING:
        if run.state not in ("queued", "submitted"):
            return "unchanged"
        updated = advance_run(ctx.ledger, run, "running")
        return "running" if updated.state == "running" else "unchanged"
    if state == JobState.COMPLETED:
        return complete_run(ctx, run, confirmed=status)
    if state in (JobState.FAILED, JobState.CANCELED):
        if run.state not in JOB_ACTIVE:
            return "unchanged"  # a late failure after completion (or a repeat) changes nothing
        reason = error or job_error(ctx, run)
        target = "failed" if state == JobState.FAILED else "canceled"
        if not reason:
            reason = f"the training job {run.job_name} was {'canceled' if target == 'canceled' else 'reported failed'}"
        updated = fail_run(ctx, run, reason, state=target, failed_step="train", reported_by=source)
        return target if updated.state == target else "unchanged"
    return "unchanged"


def job_error(ctx: RunContext, run: RunRecord) -> str:
    """The job's own error message, asked of the backend (events carry no reason)."""
    try:
        return ctx.backend.get_job(run.job_name).error
    except Exception as exc:  # noqa: BLE001 - the run fails either way; say why we could not tell more
        log.warning("could not read the error of job %s: %s", run.job_name, exc, extra=run_ids(run))
        return ""


def complete_run(ctx: RunContext, run: RunRecord, *, confirmed: JobStatus | None = None) -> str:
    """Completed job -> one registered model version (whatever the number of deliveries) -> the model's desired.

    The platform is asked first (unless ``confirmed`` is its fresh answer): a completion event can be early,
    stale or misrouted, and only a job the platform itself calls completed has a model to register.
    Returns ``unconfirmed`` when the platform could not be asked (the event is delivered again later).
    """
    if run.state not in ("queued", "submitted", "running", "completed"):
        return "unchanged"
    owner = new_owner("register")
    lease = f"run:{run.run_id}"
    if not ctx.ledger.acquire_lease(lease, owner, REGISTER_LEASE_SECONDS):
        log.info("run %s is being registered by another worker", run.run_id, extra=run_ids(run))
        return "busy"
    try:
        fresh = ctx.ledger.get(RunRecord, run.model, run.run_id)
        if fresh is None or fresh.state not in ("queued", "submitted", "running", "completed"):
            return "unchanged"
        return _register_locked(ctx, fresh, confirmed)
    finally:
        ctx.ledger.release_lease(lease, owner)


def _register_locked(ctx: RunContext, run: RunRecord, confirmed: JobStatus | None) -> str:
    status = confirmed
    if status is None or status.state != JobState.COMPLETED:
        try:
            status = ctx.backend.get_job(run.job_name)
        except Exception as exc:  # noqa: BLE001 - unconfirmed news waits for its redelivery or the backstop poll
            log.warning("could not confirm that job %s completed: %s", run.job_name, exc, extra=run_ids(run))
            return "unconfirmed"
    if status.state != JobState.COMPLETED:
        log.warning(
            "job %s was reported completed but the platform says %s: nothing registered",
            run.job_name,
            status.state.value,
            extra=run_ids(run),
        )
        if status.state == JobState.QUEUED:
            return "unchanged"
        return apply_job_state(ctx, run, status.state, error=status.error, source="platform", status=status)
    metrics: dict[str, Any] = {**run.metrics, **status.metrics}
    studio_url = status.studio_url or run.studio_url
    details = dict(run.details)
    if (status.progress or {}).get("history"):
        details["loss_history"] = status.progress["history"]  # kept for the run's loss curve
    if run.state != "completed":
        run = advance_run(ctx.ledger, run, "completed", metrics=metrics, studio_url=studio_url, details=details)
    try:
        version = ctx.backend.register_model(
            run.job_name, ctx.settings.registered_model_name(run.model), lineage_tags(run, metrics)
        )
    except BackendError as exc:
        if exc.retryable:
            log.warning("registering run %s failed, will retry: %s", run.run_id, exc, extra=run_ids(run))
            return "completed"
        fail_run(ctx, run, f"registering the trained model failed: {user_reason(exc)}", failed_step="register")
        return "failed"
    run = advance_run(
        ctx.ledger,
        run,
        "registered",
        registered_model=version.name,
        registered_version=str(version.version),
        metrics=metrics,
    )
    log.info("run %s registered as %s:%s", run.run_id, version.name, version.version, extra=run_ids(run))
    publish(
        ctx.settings,
        RUN_SUCCEEDED,
        f"models/{run.model}/runs/{run.run_id}",
        {**run_ids(run), "registered_model": version.name, "version": str(version.version), "metrics": metrics},
    )
    return "superseded" if offer_version(ctx, run) == "superseded" else "registered"


def lineage_tags(run: RunRecord, metrics: dict[str, Any]) -> dict[str, str]:
    """Tags on the registered version: where it came from (base model, data, run, job) and how it scored."""
    base = run.details.get("base_model") or {}
    tags = {
        RUN_TAG: run.run_id,
        ATTEMPT_TAG: str(int(run.details.get("attempt", 1) or 1)),
        MODEL_TAG: run.model,
        DATASET_TAG: run.dataset_id,
        CORPUS_TAG: str((run.corpus or {}).get("corpus_id", "")),
        JOB_NAME_TAG: run.job_name,
        BASE_MODEL_TAG: str(base.get("name", "")),
        BASE_VERSION_TAG: str(base.get("version", "")),
    }
    for name, value in sorted(metrics.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tags[f"metric.{name}"] = f"{value:.6g}"
    return {key: value for key, value in tags.items() if value != ""}


def offer_version(ctx: RunContext, run: RunRecord) -> str:
    """Make the run's registered version the model's desired one, unless a newer run already is (newer wins).

    Returns ``desired`` (it is now), ``unchanged`` (it already was) or ``superseded`` (a newer run won).
    """
    if run.state != "registered" or not run.registered_version:
        return "unchanged"
    outcome = "unchanged"
    replaced = ""

    def change(model: ModelRecord | None) -> ModelRecord | None:
        nonlocal outcome, replaced
        model = model or ModelRecord(model=run.model)
        if model.desired_run_id == run.run_id:
            outcome = "unchanged"
            return None
        for rival_id in {model.desired_run_id, model.live_run_id} - {""}:
            rival = ctx.ledger.get(RunRecord, run.model, rival_id)
            if rival is not None and rival.state not in ("failed", "canceled") and run_is_newer(rival, run):
                outcome = "superseded"
                replaced = rival_id
                return None
        replaced = model.desired_run_id
        model.desired_version = run.registered_version
        model.desired_run_id = run.run_id
        if model.state in ("new", "failed"):
            model.state = "deploying"
        model.error = ""
        model.updated_at = iso()
        outcome = "desired"
        return model

    ctx.ledger.mutate(ModelRecord, "models", run.model, change)
    if outcome == "superseded":
        supersede(ctx, run, by=replaced)
        log.info("run %s is older than run %s: superseded", run.run_id, replaced, extra=run_ids(run))
    elif outcome == "desired":
        log.info("model %s desired version -> %s (run %s)", run.model, run.registered_version, run.run_id)
        if replaced and replaced != run.run_id:
            older = ctx.ledger.get(RunRecord, run.model, replaced)
            if older is not None and older.state == "registered":
                supersede(ctx, older, by=run.run_id)
    return outcome


def supersede(ctx: RunContext, run: RunRecord, *, by: str) -> RunRecord:
    """A newer run took this one's place (never deployed, or no longer live)."""

    def change(current: RunRecord) -> bool:
        if not is_forward(current.state, "superseded"):
            return False
        current.details["superseded_by"] = by
        current.transition("superseded")
        return True

    return mutate_run(ctx.ledger, run, change)


__all__ = ["apply_job_state", "complete_run", "job_error", "lineage_tags", "offer_version", "supersede"]
