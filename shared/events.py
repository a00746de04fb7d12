"""Azure ML job events (Event Grid): parse, filter, and move our runs on.

Why so defensive: Event Grid delivers at least once, out of order, for up to 24 hours, and the published
samples disagree on key and value casing (``runId``/``RunId``, ``Failed``/``failed``, ``runType`` null). Every
step of a pipeline emits its own RunCompleted, other people's jobs in the same workspace emit events too, and a
subscription may be (mis)pointed at another workspace. So: keys and values are compared case-insensitively,
only events from *our* workspace about jobs *we* submitted are acted on, and acting is idempotent (see
``shared.runs.outcome``). A malformed event is logged and acknowledged: retrying it can never make it valid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.backends.base import MODEL_TAG, RUN_TAG, JobState
from shared.errors import BadInput, RetryLater
from shared.jsonbody import InvalidJSONBody, parse_json_body

log = logging.getLogger(__name__)

EVENT_NAMESPACE = "microsoft.machinelearningservices."
RUN_COMPLETED = "runcompleted"
RUN_STATUS_CHANGED = "runstatuschanged"
STEP_RUN_TYPE = "azureml.steprun"
PIPELINE_PARENT_TAG = "azureml.pipelinerunid"
# Event Grid wants an answer within 30 s; registration plus a few quick deployment steps fit well inside.
EVENT_RECONCILE_SECONDS = 10.0

# runStatus values (lower case) -> what they mean for our run; anything else changes nothing.
_STATUS = {
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
    "cancelled": JobState.CANCELED,
    "running": JobState.RUNNING,
    "starting": JobState.RUNNING,
    "preparing": JobState.RUNNING,
    "provisioning": JobState.RUNNING,
    "finalizing": JobState.RUNNING,
    "queued": JobState.QUEUED,
    "notstarted": JobState.QUEUED,
}


class MalformedEventError(BadInput, ValueError):
    """The event lacks what any job event must have (type, source, run id): acknowledge and log it."""

    code = "malformed_event"


# A delivery that finds its run busy waits this long for the other worker before asking for a redelivery.
BUSY_WAIT_SECONDS = 20.0
BUSY_POLL_SECONDS = 0.5


class RetryLaterError(RetryLater, RuntimeError):
    """Another worker holds the run right now (still recording its submission, or registering it): raised so
    Event Grid delivers the event again a little later instead of it being lost until the backstop poll."""

    code = "retry_later"


@dataclass(frozen=True)
class JobEvent:
    """One Azure ML job event, schema and casing normalised. ``kind`` is ``runcompleted``,
    ``runstatuschanged`` or the lower-cased type of anything else."""

    id: str
    kind: str
    event_type: str
    source: str
    subject: str
    job_name: str
    run_type: str = ""
    status: str = ""  # lower-cased runStatus ("" for RunCompleted)
    tags: dict[str, str] = field(default_factory=dict)  # runTags with lower-cased keys
    time: str = ""

    @property
    def job_state(self) -> JobState | None:
        if self.kind == RUN_COMPLETED:
            return JobState.COMPLETED
        return _STATUS.get(self.status)


@dataclass(frozen=True)
class EventOutcome:
    """What handling one event did: ``action`` is ``ignored``, ``malformed``, ``unchanged`` or the
    run's new state; ``reason`` says why (for logs and tests)."""

    action: str
    reason: str = ""
    run_id: str = ""
    model: str = ""
    job_name: str = ""

    @property
    def applied(self) -> bool:
        return self.action not in ("ignored", "malformed", "unchanged")


def _lower_keys(value: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_event(raw: Any) -> JobEvent:
    """Normalise one event in the EventGridEvent or CloudEvent 1.0 schema; raise MalformedEventError."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = parse_json_body(raw, what="the event")
        except InvalidJSONBody as exc:
            raise MalformedEventError(str(exc)) from None
    top = _lower_keys(raw)
    if not top:
        raise MalformedEventError(f"event must be a JSON object, got {type(raw).__name__}")
    event_type = _text(top.get("eventtype")) or _text(top.get("type"))
    source = _text(top.get("topic")) or _text(top.get("source"))
    if not event_type:
        raise MalformedEventError("event has no eventType/type")
    data = top.get("data")
    if isinstance(data, str):
        try:
            data = parse_json_body(data, what="the event's data")
        except InvalidJSONBody:
            data = None
    lowered = event_type.lower()
    kind = lowered[len(EVENT_NAMESPACE) :] if lowered.startswith(EVENT_NAMESPACE) else lowered
    subject = _text(top.get("subject"))
    if kind not in (RUN_COMPLETED, RUN_STATUS_CHANGED):
        return JobEvent(
            id=_text(top.get("id")), kind=kind, event_type=event_type, source=source, subject=subject, job_name=""
        )
    if not isinstance(data, Mapping):
        raise MalformedEventError(f"{event_type} event {top.get('id')!r} has no data object")
    fields = _lower_keys(data)
    job_name = _text(fields.get("runid"))
    if not job_name and "/runs/" in subject:
        job_name = subject.rsplit("/runs/", 1)[1].strip("/")
    if not job_name:
        raise MalformedEventError(f"{event_type} event {top.get('id')!r} names no runId")
    if not source:
        raise MalformedEventError(f"{event_type} event {top.get('id')!r} has no topic/source")
    tags = {str(k).lower(): str(v) for k, v in _lower_keys(fields.get("runtags")).items()}
    return JobEvent(
        id=_text(top.get("id")),
        kind=kind,
        event_type=event_type,
        source=source,
        subject=subject,
        job_name=job_name,
        run_type=_text(fields.get("runtype")).lower(),
        status=_text(fields.get("runstatus")).lower(),
        tags=tags,
        time=_text(top.get("eventtime")) or _text(top.get("time")),
    )


def _same_workspace(source: str, workspace_id: str) -> bool:
    return source.strip().rstrip("/").lower() == workspace_id.strip().rstrip("/").lower()


def ignore_reason(event: JobEvent, workspace_id: str) -> str | None:
    """Why this event is none of our business (None: it may be ours; the ledger decides the rest)."""
    if event.kind not in (RUN_COMPLETED, RUN_STATUS_CHANGED):
        return f"unknown event type {event.event_type}"
    if not _same_workspace(event.source, workspace_id):
        return f"event from another workspace ({event.source})"
    if event.run_type == STEP_RUN_TYPE or PIPELINE_PARENT_TAG in event.tags:
        return f"step run {event.job_name} of pipeline {event.tags.get(PIPELINE_PARENT_TAG, '?')}"
    if event.job_state is None:
        return f"run status {event.status or '(none)'} means nothing to us"
    return None


def events_in(body: Any) -> list[Any]:
    """The events of one webhook delivery (an array, or a single object)."""
    if isinstance(body, (str, bytes)):
        body = parse_json_body(body, what="the delivery")
    return list(body) if isinstance(body, list) else [body]


def handle_event(raw: Any, ctx: Any = None, *, reconcile: bool = True) -> EventOutcome:
    """Handle one delivered event end to end; never raises for a bad or foreign event.

    Storage or platform outages do raise, so Event Grid redelivers (bounded by its 24 h retry policy; the
    reconciler's backstop poll covers anything that still slips through).
    """
    from shared.runs.context import RunContext, run_ids

    try:
        event = parse_event(raw)
    except MalformedEventError as exc:
        log.warning("malformed job event acknowledged: %s", exc)
        return EventOutcome("malformed", str(exc))
    ctx = ctx or RunContext.default()
    reason = ignore_reason(event, ctx.settings.workspace_id)
    if reason:
        log.debug("job event %s ignored: %s", event.id, reason)
        return EventOutcome("ignored", reason, job_name=event.job_name)
    run = _our_run(ctx, event)
    if run is None:
        log.debug("job event %s ignored: job %s is not one we submitted", event.id, event.job_name)
        return EventOutcome("ignored", f"job {event.job_name} is not one this app submitted", job_name=event.job_name)
    state = event.job_state
    assert state is not None
    from shared.runs.outcome import apply_job_state
    from shared.telemetry import log_context

    # Every line logged while handling the event (registration, the reconcile that follows) carries the ids.
    with log_context(run_id=run.run_id, model=run.model, job_name=event.job_name, dataset_id=run.dataset_id):
        action = apply_job_state(ctx, run, state, source=f"event {event.event_type}")
        if action == "busy":
            action = _once_not_busy(ctx, run, state, event)
        if action == "unconfirmed":
            raise RetryLaterError(
                f"the platform could not confirm the state of job {event.job_name}; deliver {event.event_type} again"
            )
        log.info("job event %s for run %s: %s", event.event_type, run.run_id, action, extra=run_ids(run))
        outcome = EventOutcome(action, f"{event.kind} {event.status}".strip(), run.run_id, run.model, event.job_name)
        if reconcile and outcome.applied:
            if state.terminal:
                _submit_follow_up(ctx, run.model)
            _reconcile_now(ctx, run.model)
    return outcome


def _submit_follow_up(ctx: Any, model: str) -> None:
    """A job ended: the run that gathered data meanwhile may go now (single flight). Its corpus is built by the
    reconciler's ticks, never here (Event Grid wants an answer within 30 s); one built already is submitted."""
    try:
        from shared.runs.waiting import advance_model

        advance_model(ctx, model, build_seconds=None)
    except Exception:  # the event is handled; the next tick submits the follow-up
        log.exception("moving the waiting run of model %s on after a job event failed; the next tick retries", model)


def _once_not_busy(ctx: Any, run: Any, state: JobState, event: JobEvent) -> str:
    """Another worker is acting on this run (registering it, for one): usually it is handling a duplicate of this
    very event, so wait for it (briefly, well inside Event Grid's 30 s) and apply the event again, which then
    finds it done. Raising at once made every duplicate of a storm a failed delivery (a 500, a stack trace and a
    redelivery each); only a worker that stays busy past the wait still asks Event Grid to deliver again."""
    import time

    from shared.ledger import RunRecord
    from shared.runs.outcome import apply_job_state

    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(BUSY_POLL_SECONDS)
        fresh = ctx.ledger.get(RunRecord, run.model, run.run_id) or run
        action = apply_job_state(ctx, fresh, state, source=f"event {event.event_type}")
        if action != "busy":
            return action
    raise RetryLaterError(f"run {run.run_id} is busy in another worker; deliver {event.event_type} again later")


def _our_run(ctx: Any, event: JobEvent) -> Any:
    """Our run for the event's job: by job name, else by our run tag (a job whose name we never saved)."""
    from shared.ledger import RunRecord
    from shared.runs.context import find_run_by_job, mutate_run

    run = find_run_by_job(ctx.ledger, event.job_name)
    if run is not None:
        return run
    run_id, model = event.tags.get(RUN_TAG), event.tags.get(MODEL_TAG)
    if not run_id or not model:
        return None
    run = ctx.ledger.get(RunRecord, model, run_id)
    if run is None or run.job_name or run.state != "queued":
        return None
    from shared.runs.retry import previous_job_names

    if event.job_name in previous_job_names(run):  # a late event of a retried run's earlier attempt
        return None
    # Submitted, then crashed before the ledger learnt the job's name: adopt the job named by the event.

    def adopt(current: RunRecord) -> bool:
        if current.job_name:
            return False
        current.job_name = event.job_name
        current.backend = ctx.backend.name
        current.transition("submitted")
        return True

    return mutate_run(ctx.ledger, run, adopt)


def _reconcile_now(ctx: Any, model: str) -> None:
    """Advance the model's deployment right away instead of waiting for the next timer tick."""
    try:
        from shared.reconcile.plan import SCORING_STEPS
        from shared.reconcile.tick import reconcile_model

        reconcile_model(ctx, model, budget_seconds=EVENT_RECONCILE_SECONDS, stop_before=SCORING_STEPS)
    except Exception:  # the event is handled; the timer will retry the deployment
        log.exception("reconciling model %s after a job event failed; the next tick retries", model)


__all__ = [
    "EventOutcome",
    "JobEvent",
    "MalformedEventError",
    "RetryLaterError",
    "events_in",
    "handle_event",
    "ignore_reason",
    "parse_event",
]
