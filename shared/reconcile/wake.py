"""A wake that fails leaves the model asleep and wakeable, with the error shown and a time for the next try.

Why not ``failed``: a sleeping model has a version that served before; a failed redeployment of it (the platform
was out of capacity, a node did not come up) says nothing about the version. Marking the model ``failed`` left
no way out (nothing to wake, ``model_failed`` for good). So a failed wake puts the model back to ``sleeping`` with
``wake_retry = {"failures", "at", "automatic", "error"}``:
- the next request after ``at`` (or ``POST /wake`` at any time) wakes it again; earlier requests are told when;
- ``at`` backs off: ``WAKE_RETRY_MINUTES`` after the first failure, doubling with each further one (at most 16x);
- quota and capacity failures (and any failure of a pinned model, which must always answer) are retried
  ``automatic``-ally by the reconciler once ``at`` has passed, since they clear without anyone changing anything.
A successful rollout clears ``wake_retry``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.ledger import ModelRecord
from shared.models import pinned_by, request_wake
from shared.runs.context import RunContext
from shared.settings import Settings
from shared.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 16
# BackendError / DeploymentState codes that mean "no room on the platform right now", not "this version is bad".
CAPACITY_CODES = frozenset({"quota", "capacity"})


def backoff(settings: Settings, failures: int) -> timedelta:
    factor = min(2 ** max(failures - 1, 0), MAX_BACKOFF_FACTOR)
    return timedelta(minutes=settings.wake_retry_minutes * factor)


def record_failed_wake(settings: Settings, model: ModelRecord, reason: str, *, capacity: bool) -> None:
    """Put a model whose wake failed back to sleep, wakeable again after the backoff (changes ``model`` only)."""
    failures = int((model.wake_retry or {}).get("failures", 0)) + 1
    at = iso(utcnow() + backoff(settings, failures))
    automatic = capacity or bool(pinned_by(settings, model.model, model))
    model.state = "sleeping"
    model.wake_retry = {"failures": failures, "at": at, "automatic": automatic, "error": reason}
    then = (
        f"the reconciler tries again after {at}"
        if automatic
        else f"the next request after {at} (or POST /api/models/{model.model}/wake) tries again"
    )
    model.error = f"{reason}; the model stays asleep and {then}"


def retry_due_wakes(ctx: RunContext) -> dict[str, str]:
    """Wake again the sleeping models whose failed wake is retried automatically and whose time has come."""
    done: dict[str, str] = {}
    now = utcnow()
    for record in ctx.ledger.query_eq(ModelRecord, PartitionKey="models", state="sleeping"):
        retry = record.wake_retry or {}
        due = parse_iso(retry.get("at"))
        if not retry.get("automatic") or due is None or due > now:
            continue
        reason = f"automatic retry {retry.get('failures', 0)} after a failed wake"
        woke = request_wake(ctx.settings, ctx.ledger, record.model, reason=reason)
        done[record.model] = "woken" if woke else "unchanged"
        log.info("model %s: %s: %s", record.model, reason, done[record.model], extra={"model": record.model})
    return done


__all__ = ["CAPACITY_CODES", "backoff", "record_failed_wake", "retry_due_wakes"]
