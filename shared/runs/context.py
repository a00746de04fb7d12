"""What every run and deployment step needs: settings, the ledger and the ML backend, plus run-record helpers.

Why a small context object: the same steps run from a blob trigger, an Event Grid trigger, a timer, an HTTP
route, the CLI and tests; passing the three collaborators together keeps each call honest about what it
touches and lets tests hand in their own ledger (own tables) and backend (own state folder).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.ledger import ConflictError, Ledger, RunRecord

if TYPE_CHECKING:
    from shared.backends.base import MLBackend
    from shared.settings import Settings

log = logging.getLogger(__name__)

# Forward order of a healthy run; a run never moves backwards (a late event for an earlier state changes nothing).
RUN_ORDER = ("waiting", "queued", "submitted", "running", "completed", "registered", "deploying", "live")
# Where the promotion gate may stop a version: after registration, before it is live.
GATED = frozenset({"registered", "deploying"})
# States in which the training job may still be going (events and the backstop poll act on these); at most one
# run per model is in one of them at a time (single flight, ``shared.runs.waiting``), retries apart.
JOB_ACTIVE = frozenset({"queued", "submitted", "running"})


class RunContext:
    """Settings, ledger and backend; the backend is created on first use (listing runs never needs it)."""

    def __init__(self, settings: Settings, ledger: Ledger, backend: MLBackend | None = None):
        self.settings = settings
        self.ledger = ledger
        self._backend = backend

    @property
    def backend(self) -> MLBackend:
        if self._backend is None:
            from shared.backends import get_backend

            self._backend = get_backend(self.settings)
        return self._backend

    @classmethod
    def default(cls) -> RunContext:
        """The process-wide settings and ledger (what the function triggers use); the configured backend."""
        from shared.ledger import get_ledger
        from shared.settings import get_settings

        return cls(settings=get_settings(), ledger=get_ledger())


def new_owner(kind: str) -> str:
    """A lease owner id unique to this call (host, process, random), readable in the Leases table."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def held_lease(ctx: RunContext, name: str, kind: str, seconds: float, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the lease ``name`` for the block; yields False (and holds nothing) when another worker keeps it for
    longer than ``wait`` seconds (0: one try; a caller that answers a person may wait a little)."""
    owner = new_owner(kind)
    deadline = time.monotonic() + wait
    while not ctx.ledger.acquire_lease(name, owner, seconds):
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(0.5)
    try:
        yield True
    finally:
        ctx.ledger.release_lease(name, owner)


def is_forward(current: str, target: str) -> bool:
    """True when moving a run from ``current`` to ``target`` is progress (never backwards, never out of an end).

    The promotion gate's states sit beside ``deploying``: a version under evaluation may become ``held`` or
    ``awaiting_approval``; a waiting one may be rejected (``held``) or overtaken. Only an explicit promotion
    (``shared.runs.promotion``) moves a held or waiting run on to ``deploying``.
    """
    if current == target or current in ("failed", "canceled", "superseded", "held"):
        return False
    if current == "live":
        return target == "superseded"  # a live run only ever gives way to a newer one
    if current == "awaiting_approval":
        return target in ("held", "failed", "canceled", "superseded")
    if target in ("failed", "canceled", "superseded"):
        return True
    if target in ("held", "awaiting_approval"):
        return current in GATED
    return RUN_ORDER.index(target) > RUN_ORDER.index(current)


def run_ids(run: RunRecord) -> dict[str, Any]:
    """Correlation fields for log records (one query follows a run across functions)."""
    return {"run_id": run.run_id, "model": run.model, "job_name": run.job_name}


def mutate_run(ledger: Ledger, run: RunRecord, change: Callable[[RunRecord], bool]) -> RunRecord:
    """Apply ``change`` to the freshest copy of ``run`` and store it with its ETag, retried on conflict.

    ``change`` returns False to leave the record as it is (duplicate or out-of-order update). Returns the
    stored (or unchanged current) record; raises ``LookupError`` if the run has vanished.
    """

    def apply(current: RunRecord | None) -> RunRecord | None:
        if current is None:
            raise LookupError(f"run {run.run_id} of model {run.model} is not in the ledger")
        return current if change(current) else None

    result = ledger.mutate(RunRecord, run.model, run.run_id, apply)
    assert result is not None
    return result


def advance_run(ledger: Ledger, run: RunRecord, state: str, *, error: str = "", **fields: Any) -> RunRecord:
    """Move a run forward to ``state`` (setting ``fields``) unless that would be a step back or a repeat."""

    def change(current: RunRecord) -> bool:
        if not is_forward(current.state, state):
            return False
        for key, value in fields.items():
            setattr(current, key, value)
        current.transition(state, error=error)
        return True

    return mutate_run(ledger, run, change)


def find_run(ledger: Ledger, run_id: str) -> RunRecord | None:
    """The run with this id, whatever its model (run ids are ``{model}-{12 hex}``)."""
    model, _, _ = run_id.rpartition("-")
    if model:
        found = ledger.get(RunRecord, model, run_id)
        if found is not None:
            return found
    rows = ledger.query_eq(RunRecord, RowKey=run_id)
    return rows[0] if rows else None


def find_run_by_job(ledger: Ledger, job_name: str) -> RunRecord | None:
    """The run that submitted ``job_name`` (None for a job somebody else submitted)."""
    if not job_name:
        return None
    rows = ledger.query_eq(RunRecord, job_name=job_name)
    return rows[0] if rows else None


def run_is_newer(a: RunRecord, b: RunRecord) -> bool:
    """Newer wins: ``a`` was created after ``b`` (run id breaks a tie so the order is total)."""
    return (a.created_at, a.run_id) > (b.created_at, b.run_id)


__all__ = [
    "GATED",
    "JOB_ACTIVE",
    "RUN_ORDER",
    "ConflictError",
    "RunContext",
    "advance_run",
    "find_run",
    "find_run_by_job",
    "held_lease",
    "is_forward",
    "mutate_run",
    "new_owner",
    "run_ids",
    "run_is_newer",
]
