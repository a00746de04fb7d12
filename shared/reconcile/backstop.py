"""The backstop: runs whose news never came still move on.

Why: Event Grid can drop or dead-letter an event, a subscription can be missing for a while (it is created
after the code is deployed), and failed or canceled jobs emit no RunCompleted. So each tick looks at every run
that is not finished yet and:
- ``waiting``: moves it on (``shared.runs.waiting``: debounce, corpus, single flight, budget, submission);
- ``queued``: (re)submits it (a crash or a throttled API left it unsubmitted; ``submit_run`` is idempotent);
- ``submitted`` / ``running`` with no news for ``JOB_POLL_AFTER_MINUTES``: asks the platform for the job's state
  and reacts exactly as the event would have (``apply_job_state``);
- ``completed``: registration was interrupted; it is retried (idempotent per run);
- ``registered``: offers the version to its model again, in case a crash came between registering and
  setting the desired version.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from shared.backends.base import BackendError
from shared.ledger import RunRecord
from shared.runs.context import RunContext, mutate_run, run_ids
from shared.runs.failure import fail_run, user_reason
from shared.runs.outcome import apply_job_state, complete_run, offer_version
from shared.runs.submit import submit_run
from shared.runs.waiting import BUILD_SECONDS, advance_model
from shared.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

BUILD_SECONDS_PER_TICK = 240.0  # all waiting runs together: the timer's invocation stays far below its timeout
PENDING_STATES = ("waiting", "queued", "submitted", "running", "completed", "registered")
MAX_POLL_ERRORS = 3


def pending_runs(ctx: RunContext) -> list[RunRecord]:
    where = " or ".join(f"state eq '{state}'" for state in PENDING_STATES)
    return sorted(ctx.ledger.query(RunRecord, where), key=lambda run: (run.created_at, run.run_id))


def tend_runs(ctx: RunContext, now: datetime | None = None) -> dict[str, str]:
    """One pass over unfinished runs; returns ``{run_id: what happened}`` for the runs that were acted on.

    Corpus building shares ``BUILD_SECONDS_PER_TICK`` across all waiting runs, so a tick with several big corpora
    still ends well within the function timeout (each goes on in the next tick)."""
    now = now or utcnow()
    done: dict[str, str] = {}
    build_until = time.monotonic() + BUILD_SECONDS_PER_TICK
    for run in pending_runs(ctx):
        try:
            left = build_until - time.monotonic()
            action = tend_run(ctx, run, now, build_seconds=min(left, BUILD_SECONDS) if left > 0 else None)
        except Exception as exc:  # one bad run must not stop the others; the next tick retries
            log.exception("backstop: run %s failed", run.run_id, extra=run_ids(run))
            action = f"error: {exc}"
        if action:
            done[run.run_id] = action
    return done


def poll_due(run: RunRecord, now: datetime, after_minutes: float) -> bool:
    """True when the run has had no news (event, poll, submission) for ``after_minutes``."""
    stamps = [parse_iso(run.updated_at), parse_iso(run.details.get("last_polled_at"))]
    last = max((stamp for stamp in stamps if stamp is not None), default=None)
    return last is None or now - last >= timedelta(minutes=after_minutes)


def tend_run(ctx: RunContext, run: RunRecord, now: datetime, *, build_seconds: float | None = BUILD_SECONDS) -> str:
    if run.state == "waiting":
        return advance_model(ctx, run.model, build_seconds=build_seconds).get(run.run_id, "")
    if run.state == "queued":
        after = submit_run(ctx, run)
        return f"submit: {after.state}" if after.state != "queued" else ""
    if run.state in ("submitted", "running"):
        if not run.job_name or not poll_due(run, now, ctx.settings.job_poll_after_minutes):
            return ""
        return "poll: " + poll_job(ctx, run)
    if run.state == "completed":
        return "register: " + complete_run(ctx, run)
    if run.state == "registered":
        outcome = offer_version(ctx, run)
        return "" if outcome == "unchanged" else f"offer: {outcome}"
    return ""


def poll_job(ctx: RunContext, run: RunRecord) -> str:
    """Read the job's state and react as its event would; remember the poll so the next one waits its turn."""
    try:
        status = ctx.backend.get_job(run.job_name)
    except BackendError as exc:
        errors = int(run.details.get("poll_errors", 0)) + 1
        if not exc.retryable and errors >= MAX_POLL_ERRORS:
            fail_run(ctx, run, f"the job {run.job_name} could not be read: {user_reason(exc)}", failed_step="poll")
            return "failed"
        _note_poll(ctx, run, error=user_reason(exc), errors=errors)
        return f"error: {exc}"
    action = apply_job_state(ctx, run, status.state, error=status.error, source="poll", status=status)
    if action == "unchanged":
        _note_poll(ctx, run, progress=status.progress)
    log.info(
        "backstop polled job %s of run %s: %s (%s)", run.job_name, run.run_id, status.state, action, extra=run_ids(run)
    )
    return action


def _note_poll(ctx: RunContext, run: RunRecord, *, error: str = "", errors: int = 0, progress: dict | None = None):
    def change(current: RunRecord) -> bool:
        if current.state != run.state:
            return False
        current.details["last_polled_at"] = iso()
        current.details["poll_errors"] = errors
        if error:
            current.details["last_poll_error"] = error
        else:
            current.details.pop("last_poll_error", None)
        if progress:
            current.details["progress"] = progress
        return True

    mutate_run(ctx.ledger, run, change)


__all__ = ["PENDING_STATES", "pending_runs", "poll_due", "poll_job", "tend_run", "tend_runs"]
