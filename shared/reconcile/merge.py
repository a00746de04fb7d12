"""Recording a step over an unrelated concurrent change of the model record (a three-way merge).

Why: a step acts on the platform, then saves the model record with the ETag it read. Another writer may have
changed the record meanwhile for a reason that has nothing to do with the rollout (a newer version offered,
the model pinned). The platform action happened all the same, so giving up the save would leave the ledger and
the endpoint disagreeing (100% traffic on a deployment the ledger still calls "being rolled out"). So on a
conflict, provided the rollout in flight is still exactly the one the step read, the step's own changes (the
fields it changed since it read the record) are applied to the fresh record and saved; the other writer's
changes are kept, and win where both changed the same field. A rollout changed meanwhile is a real conflict.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared.ledger import ConflictError, Ledger, ModelRecord

_read: ContextVar[dict[str, Any] | None] = ContextVar("model_record_as_read", default=None)
MERGE_ATTEMPTS = 3


def _fields(record: ModelRecord) -> dict[str, Any]:
    return {f.name: copy.deepcopy(getattr(record, f.name)) for f in dataclasses.fields(record) if f.name != "etag"}


@contextmanager
def step_reading(record: ModelRecord) -> Iterator[None]:
    """Remember the record as the step read it (the base of the merge) while the step runs."""
    token = _read.set(_fields(record))
    try:
        yield
    finally:
        _read.reset(token)


def save_merged(ledger: Ledger, record: ModelRecord) -> ModelRecord:
    """Save ``record`` after ``ConflictError``: its changes onto the fresh record (see module doc)."""
    base = _read.get()
    if base is None or base.get("model") != record.model:
        raise ConflictError(f"model {record.model} changed meanwhile")
    ours = {name: value for name, value in _fields(record).items() if value != base[name]}
    for _ in range(MERGE_ATTEMPTS):
        fresh = ledger.get(ModelRecord, "models", record.model)
        if fresh is None or fresh.deployment != base["deployment"]:
            raise ConflictError(f"model {record.model}: the rollout changed meanwhile")
        for name, value in ours.items():
            if getattr(fresh, name) == base[name]:  # both changed it: theirs is newer and stays
                setattr(fresh, name, copy.deepcopy(value))
        try:
            saved = ledger.save(fresh)
        except ConflictError:
            continue
        for name, value in _fields(saved).items():
            setattr(record, name, value)
        record.etag = saved.etag
        return saved
    raise ConflictError(f"model {record.model} kept changing while a step was recorded")


__all__ = ["save_merged", "step_reading"]
