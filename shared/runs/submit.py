"""Submitting a run's fine-tuning job: queued -> submitted, exactly once, or failed with a reason a user can act on.

Why so careful: ingestion calls this right after preparing a dataset, and the reconciler retries runs left in
``queued`` (a crash, a throttled API). Two callers may race, and a process may die between "the platform
accepted the job" and "the ledger knows its name". So: one submitter per run at a time (a lease), and before
submitting we ask the backend whether a job tagged with our run id already exists (``find_job``); if it does we
adopt it instead of training twice.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.backends.base import BackendError, FineTuneRequest, JobState, JobStatus
from shared.errors import BadInput
from shared.ledger import DatasetRecord, RunRecord
from shared.runs.context import RunContext, mutate_run, new_owner, run_ids
from shared.runs.create import create_run
from shared.runs.failure import fail_run, user_reason
from shared.timeutil import iso

log = logging.getLogger(__name__)

SUBMIT_LEASE_SECONDS = 300
# Unexpected (non-BackendError) failures are retried by the reconciler this many times before the run fails.
MAX_SUBMIT_ATTEMPTS = 5


class RunInputError(BadInput, BackendError):
    """The run's own inputs (per-model finetune.json) are wrong: fail the run, nothing to retry."""

    code = "invalid_run_input"


def dataset_blob(model: str, dataset_id: str, split: str) -> str:
    """Blob path (inside TRAINING_CONTAINER) of a prepared split: ``datasets/{model}/{dataset_id}/{split}.jsonl``."""
    return f"datasets/{model}/{dataset_id}/{split}.jsonl"


def run_split_blob(run: RunRecord, split: str) -> str:
    """Blob path of the file a run trains on (``train``) or holds out (``test``).

    The one place that knows which data a run used: training, the smoke test and evaluation all ask here. A run
    trains on its corpus snapshot (``datasets/{model}/corpora/{corpus_id}/``, or in ``CORPUS_MODE=latest`` the
    newest dataset's own files); a run from before corpora existed, on its one dataset.
    """
    files = (run.corpus or {}).get("files") or {}
    if split in files:
        return files[split]
    return dataset_blob(run.model, run.dataset_id, split)


def finetune_json_blob(model: str) -> str:
    return f"incoming/{model}/finetune.json"


def read_model_overrides(ctx: RunContext, model: str) -> dict[str, Any]:
    """The per-model ``incoming/{model}/finetune.json`` (empty when absent); malformed -> RunInputError."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.finetune_params import parse_parameters_json
    from shared.storage import blob_service

    path = finetune_json_blob(model)
    client = blob_service(ctx.settings).get_blob_client(ctx.settings.training_container, path)
    try:
        text = client.download_blob().readall()
    except ResourceNotFoundError:
        return {}
    source = f"{ctx.settings.training_container}/{path}"
    try:
        return parse_parameters_json(text, source=source)
    except BackendError as exc:
        raise RunInputError(str(exc), code="invalid_parameter") from None


def _validated_overrides(ctx: RunContext, model: str) -> dict[str, Any]:
    """FINETUNE_PARAMETERS then finetune.json, each checked under its own name so an error says where it is."""
    from shared.finetune_params import validate_parameters

    merged: dict[str, Any] = {}
    layers = [
        ("FINETUNE_PARAMETERS", dict(ctx.settings.finetune_parameters)),
        (f"{ctx.settings.training_container}/{finetune_json_blob(model)}", read_model_overrides(ctx, model)),
    ]
    for source, values in layers:
        present = {k: v for k, v in values.items() if v is not None}
        try:
            validate_parameters(present, source=source)
        except BackendError as exc:
            if source == "FINETUNE_PARAMETERS":
                raise
            raise RunInputError(str(exc), code="invalid_parameter") from None
        merged.update(values)
    return merged


def submit_run(ctx: RunContext, run: RunRecord) -> RunRecord:
    """Submit the job of a ``queued`` run (idempotent; a run in any other state is returned unchanged)."""
    if run.state != "queued":
        return run
    owner = new_owner("submit")
    lease = f"run:{run.run_id}"
    if not ctx.ledger.acquire_lease(lease, owner, SUBMIT_LEASE_SECONDS):
        log.info("run %s is being submitted by another worker", run.run_id, extra=run_ids(run))
        return run
    try:
        fresh = ctx.ledger.get(RunRecord, run.model, run.run_id)
        if fresh is None or fresh.state != "queued":
            return fresh or run
        submitted, adopted = _submit_locked(ctx, fresh)
    finally:
        ctx.ledger.release_lease(lease, owner)
    if adopted is None:
        return submitted
    return _act_on_adopted(ctx, submitted, adopted)  # outside the lease: registering takes the run's lease


def job_key(run: RunRecord) -> str:
    """The id the backend names, tags and finds the job by: the run id, plus the attempt for a retried run.

    Why: backends look a job up by this key before submitting (so a crash never trains twice); a retry
    (``shared.runs.retry``) must get a NEW job, never re-adopt the previous attempt's failed one.
    """
    attempt = int(run.details.get("attempt", 1) or 1)
    return run.run_id if attempt <= 1 else f"{run.run_id}-attempt{attempt}"


def _submit_locked(ctx: RunContext, run: RunRecord) -> tuple[RunRecord, JobStatus | None]:
    """Submit (or adopt) the run's job; the second value is an adopted job's state as the platform reported it."""
    backend = ctx.backend
    key = job_key(run)
    try:
        existing = backend.find_job(key)
        if existing:
            log.info("run %s already has job %s; adopting it", run.run_id, existing, extra=run_ids(run))
            return _record_submitted(ctx, run, existing, adopted=True)
        overrides = _validated_overrides(ctx, run.model)  # the run's own inputs first: cheap and most often wrong
        base = backend.resolve_base_model()
        compute = backend.check_compute(base)
        parameters = backend.build_parameters(base, compute, overrides)
        request = FineTuneRequest(
            run_id=key,
            model=run.model,
            dataset_id=run.dataset_id,
            data_version=(run.corpus or {}).get("corpus_id", ""),
            train_path=run_split_blob(run, "train"),
            test_path=run_split_blob(run, "test"),
            parameters=parameters,
            base_model=base,
            compute=compute,
            experiment=ctx.settings.experiment_name,
        )
        job_name = backend.submit_finetune(request)
    except BackendError as exc:
        if exc.retryable:
            return _note_attempt(ctx, run, user_reason(exc), retry=True), None
        return fail_run(ctx, run, user_reason(exc), failed_step="submit", code=exc.code), None
    except Exception as exc:  # unexpected: keep the run queued for the reconciler, bounded
        log.exception("submitting run %s failed unexpectedly", run.run_id, extra=run_ids(run))
        return _note_attempt(ctx, run, f"{type(exc).__name__}: {exc}", retry=True), None
    details = {
        "base_model": {"name": base.name, "version": base.version, "id": base.id},
        "compute": {"name": compute.name, "instance_type": compute.instance_type, "gpus": compute.gpus_per_node},
    }
    return _record_submitted(ctx, run, job_name, parameters=parameters, details=details)[0], None


def _record_submitted(
    ctx: RunContext,
    run: RunRecord,
    job_name: str,
    *,
    parameters: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    adopted: bool = False,
) -> tuple[RunRecord, JobStatus | None]:
    status: JobStatus | None = None
    try:
        status = ctx.backend.get_job(job_name)
    except Exception:  # noqa: BLE001 - the link is a convenience; the job is submitted either way
        log.debug("no studio link for job %s yet", job_name)
    studio_url = status.studio_url if status is not None else ""
    extra: dict[str, Any] = {"submitted_at": iso(), "adopted": adopted}
    extra.update(details or {})

    def change(current: RunRecord) -> bool:
        if current.job_name and current.state != "queued":
            return False
        current.job_name = job_name
        current.backend = ctx.backend.name
        current.studio_url = studio_url or current.studio_url
        if parameters is not None:
            current.parameters = parameters
        current.details.update(extra)
        current.details.pop("last_error", None)
        current.error = ""
        current.transition("submitted")
        return True

    updated = mutate_run(ctx.ledger, run, change)
    log.info("run %s submitted as job %s", updated.run_id, job_name, extra=run_ids(updated))
    return updated, status if adopted else None


def _act_on_adopted(ctx: RunContext, run: RunRecord, status: JobStatus) -> RunRecord:
    """An adopted job may have run, or finished, long ago, and its events with it: act on its state now.

    Why not wait for an event: a job that finished before the crash (or before the ledger was lost) will send
    none, and the backstop would only poll it after ``JOB_POLL_AFTER_MINUTES``.
    """
    from shared.runs.outcome import apply_job_state  # outcome builds on the same failure helpers

    if status.state == JobState.QUEUED or run.state != "submitted":
        return run
    action = apply_job_state(ctx, run, status.state, error=status.error, source="adopted job", status=status)
    log.info("run %s adopted job %s, which is %s: %s", run.run_id, run.job_name, status.state, action)
    return ctx.ledger.get(RunRecord, run.model, run.run_id) or run


def _note_attempt(ctx: RunContext, run: RunRecord, reason: str, *, retry: bool) -> RunRecord:
    """Remember a failed attempt on a queued run; after MAX_SUBMIT_ATTEMPTS the run fails with the reason."""
    attempts = int(run.details.get("submit_attempts", 0)) + 1
    if not retry or attempts >= MAX_SUBMIT_ATTEMPTS:
        return fail_run(ctx, run, f"{reason} (after {attempts} submission attempts)", failed_step="submit")

    def change(current: RunRecord) -> bool:
        if current.state != "queued":
            return False
        current.details["submit_attempts"] = attempts
        current.details["last_error"] = reason
        current.details["last_attempt_at"] = iso()
        current.updated_at = iso()
        return True

    log.warning("run %s not submitted yet (attempt %d): %s", run.run_id, attempts, reason, extra=run_ids(run))
    return mutate_run(ctx.ledger, run, change)


def start_run_for_dataset(ledger: Any, dataset: DatasetRecord, ctx: RunContext | None = None) -> RunRecord:
    """Gather a prepared dataset into its model's next run (``waiting``) and move that run on as far as it can go
    now: submitted at once when the debounce is 0 and no job is in flight. Idempotent per dataset.

    Submission problems never raise here: they are recorded on the run (``failed`` with the reason, or still
    ``waiting``/``queued`` for the reconciler), because the dataset itself was prepared successfully.
    """
    from shared.runs.waiting import advance_model

    run = create_run(ledger, dataset)
    if run.state != "waiting":
        return run
    if ctx is None:
        ctx = RunContext(settings=RunContext.default().settings, ledger=ledger)
    try:
        advance_model(ctx, run.model)
    except Exception:  # the dataset is prepared and gathered; the reconciler moves the run on
        log.exception("could not move run %s on now; the reconciler will", run.run_id, extra=run_ids(run))
    return ctx.ledger.get(RunRecord, run.model, run.run_id) or run


def submit_or_leave_queued(ctx: RunContext, run: RunRecord) -> RunRecord:
    """``submit_run`` that never raises: an unexpected error leaves the run ``queued`` for the reconciler."""
    try:
        return submit_run(ctx, run)
    except Exception:  # the caller's own work succeeded; the reconciler retries queued runs
        log.exception("could not submit run %s now; the reconciler will retry", run.run_id, extra=run_ids(run))
        return ctx.ledger.get(RunRecord, run.model, run.run_id) or run


__all__ = [
    "MAX_SUBMIT_ATTEMPTS",
    "RunInputError",
    "dataset_blob",
    "finetune_json_blob",
    "job_key",
    "read_model_overrides",
    "run_split_blob",
    "start_run_for_dataset",
    "submit_or_leave_queued",
    "submit_run",
]
