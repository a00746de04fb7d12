"""The runs API's answers: a paged list (newest first), one run in detail, and cancellation.

Why the paging is done here: Table storage returns runs in key order (model, run id), not by time, and a model
trains at most a few times a day (MAX_RUNS_PER_MODEL_PER_DAY), so there are few; we read the filtered set, sort
by creation time, and page with an opaque keyset token (the last run's time and id), which stays correct when new
runs arrive between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from shared.errors import BadInput, Conflict
from shared.jsonbody import parse_json_body
from shared.names import InvalidNameError, validate_model_name
from shared.records import RUN_STATES, DatasetRecord, ModelRecord, RunRecord
from shared.runs.context import JOB_ACTIVE, RunContext, find_run, new_owner, run_ids
from shared.runs.failure import fail_run

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
REPORT_SUMMARY_KEYS = (
    "source",
    "format",
    "total_lines",
    "train",
    "test",
    "rejected",
    "reasons",
    "warnings",
    "kept_fraction",
    "over_max_seq_length",
    "estimated_training_tokens",
)


class RunQueryError(BadInput, ValueError):
    """A bad query parameter; ``field`` names it (the API answers 400)."""

    code = "invalid_parameter"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class RunStateError(Conflict, RuntimeError):
    """The run is in a state that does not allow the action (the API answers 409)."""

    code = "run_not_cancelable"


def _encode_token(run: RunRecord) -> str:
    raw = json.dumps([run.created_at, run.run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        created_at, run_id = parse_json_body(base64.urlsafe_b64decode(padded.encode()), what="continuation")
        return str(created_at), str(run_id)
    except (ValueError, TypeError, binascii.Error):  # InvalidJSONBody is a ValueError
        raise RunQueryError("continuation", "continuation is not a token this API returned") from None


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise RunQueryError("limit", f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise RunQueryError("limit", f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def summary(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "model": run.model,
        "dataset_id": run.dataset_id,
        "corpus_id": (run.corpus or {}).get("corpus_id") or None,
        "state": run.state,
        "waiting_reason": run.details.get("waiting_reason") if run.state == "waiting" else None,
        "job_name": run.job_name or None,
        "registered_version": run.registered_version or None,
        "error": run.error or None,
        "decision": (run.evaluation or {}).get("decision"),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def list_runs(
    ctx: RunContext,
    *,
    model: str | None = None,
    state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    continuation: str | None = None,
) -> dict[str, Any]:
    """``{"runs": [...], "continuation": token or None}``, newest first, filtered by model and state."""
    filters: dict[str, str] = {}
    if model:
        try:
            filters["PartitionKey"] = validate_model_name(model)
        except InvalidNameError as exc:
            raise RunQueryError("model", str(exc)) from None
    if state:
        if state not in RUN_STATES:
            raise RunQueryError("state", f"state must be one of {', '.join(RUN_STATES)}, got {state!r}")
        filters["state"] = state
    runs = ctx.ledger.query_eq(RunRecord, **filters) if filters else list(ctx.ledger.query(RunRecord))
    runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    if continuation:
        after = _decode_token(continuation)
        runs = [r for r in runs if (r.created_at, r.run_id) < after]
    page = runs[:limit]
    token = _encode_token(page[-1]) if len(runs) > limit else None
    return {"runs": [summary(r) for r in page], "continuation": token}


def _dataset_summary(ctx: RunContext, run: RunRecord) -> dict[str, Any] | None:
    dataset = ctx.ledger.get(DatasetRecord, run.model, run.dataset_id)
    if dataset is None:
        return None
    report = dataset.report or {}
    # The report's headline numbers; per-line details (first rejections, token percentiles) stay in report.json.
    brief = {key: report[key] for key in REPORT_SUMMARY_KEYS if key in report}
    return {
        "dataset_id": dataset.dataset_id,
        "state": dataset.state,
        "source_blob": dataset.source_blob,
        "prefix": dataset.prefix,
        "report_blob": f"{dataset.prefix}report.json" if dataset.prefix else None,
        "summary": brief,
        "error": dataset.error or None,
    }


def waiting_detail(run: RunRecord) -> dict[str, Any] | None:
    """Why a waiting run waits, until when, and the changes of data it gathered (``None`` once it left)."""
    if run.state != "waiting":
        return None
    return {
        "reason": run.details.get("waiting_reason"),
        "not_before": run.details.get("not_before"),
        "building": run.details.get("building"),
        "changes": run.details.get("changes") or [],
    }


def run_detail(ctx: RunContext, run_id: str) -> dict[str, Any] | None:
    """Everything about one run; the job's live status is asked of the backend while it trains."""
    run = find_run(ctx.ledger, run_id)
    if run is None:
        return None
    body = summary(run)
    body["timeline"] = [{"state": state, "at": at} for state, at in run.timeline]
    body["dataset"] = _dataset_summary(ctx, run)
    body["corpus"] = run.corpus or None  # set when the run leaves waiting
    body["waiting"] = waiting_detail(run)
    job: dict[str, Any] = {"name": run.job_name or None, "backend": run.backend or None, "studio_url": None}
    metrics = dict(run.metrics)
    if run.job_name:
        job["studio_url"] = run.studio_url or None
        if run.state in JOB_ACTIVE or not job["studio_url"]:
            try:
                status = ctx.backend.get_job(run.job_name)
                job.update(status=str(status.state), progress=status.progress or None)
                job["studio_url"] = status.studio_url or job["studio_url"]
                metrics = {**status.metrics, **metrics}
            except Exception as exc:  # noqa: BLE001 - the stored view is still worth answering with
                job["status_error"] = str(exc)
    body["job"] = job
    body["parameters"] = run.parameters
    body["metrics"] = metrics
    body["registered"] = (
        {"model": run.registered_model, "version": run.registered_version} if run.registered_version else None
    )
    shown_apart = ("progress", "loss_history", "waiting_reason", "not_before", "building", "changes")
    details = {k: v for k, v in run.details.items() if k not in shown_apart}
    body["details"] = details
    live_history = ((job.get("progress") or {}).get("history")) if job.get("progress") else None
    body["loss_history"] = live_history or run.details.get("loss_history") or None
    model = ctx.ledger.get(ModelRecord, "models", run.model)
    if model is not None:
        in_flight = model.deployment if model.deployment.get("run_id") == run.run_id else {}
        live = model.live_run_id == run.run_id
        body["deployment"] = {
            "live": live,
            "step": in_flight.get("step"),
            "endpoint": (model.endpoint_name if live else in_flight.get("endpoint")) or None,
            "deployment": (model.live_deployment if live else in_flight.get("name")) or None,
            # while the evaluation runs: {"blob", "requests", "done"}; once decided also "decision"
            "evaluation": in_flight.get("evaluation"),
        }
    body["evaluation"] = run.evaluation or None
    return body


CANCELABLE = JOB_ACTIVE | {"waiting"}


def cancel_run(ctx: RunContext, run_id: str, *, reason: str = "canceled by request") -> RunRecord | None:
    """Cancel a run's job (or a run still waiting or queued). None if there is no such run; RunStateError when
    too late. A canceled waiting run gathers no more data: the next change of data opens a new run."""
    run = find_run(ctx.ledger, run_id)
    if run is None:
        return None
    if run.state not in CANCELABLE:
        raise RunStateError(
            f"run {run_id} is {run.state}; only waiting, queued, submitted or running runs can be canceled"
        )
    owner = new_owner("cancel")
    lease = f"run:{run.run_id}"
    if not ctx.ledger.acquire_lease(lease, owner, 60):
        raise RunStateError(f"run {run_id} is being submitted or registered right now; try again in a minute")
    try:
        fresh = ctx.ledger.get(RunRecord, run.model, run.run_id) or run
        if fresh.state not in CANCELABLE:
            raise RunStateError(f"run {run_id} is {fresh.state}; it can no longer be canceled")
        if fresh.job_name:
            ctx.backend.cancel_job(fresh.job_name)
        log.info("run %s %s", fresh.run_id, reason, extra=run_ids(fresh))
        return fail_run(ctx, fresh, reason, state="canceled", failed_step="cancel")
    finally:
        ctx.ledger.release_lease(lease, owner)


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RunQueryError",
    "RunStateError",
    "cancel_run",
    "list_runs",
    "parse_limit",
    "run_detail",
    "waiting_detail",
]
