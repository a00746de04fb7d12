"""Ledger records for tests, built one way: a live (or sleeping) model, a run, a dataset, a model's activity.

Why: tests that need a model "live on version 3 behind endpoint at-support-bot" used to spell the record out
field by field, each a little differently. A factory names the situation and fills in the consistent rest
(``live_deployment`` is ``v{version}``, the endpoint is ``at-{model}``); a test passes only what it is about.
``build_*`` returns the record; the functions without the prefix also store it in the ledger given.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.records import ActivityRecord, DatasetRecord, ModelRecord, RunRecord
from shared.timeutil import iso, utcnow

if TYPE_CHECKING:
    from shared.ledger import Ledger

MODEL = "support-bot"


def hours_ago(hours: float) -> str:
    """An ISO timestamp ``hours`` before now."""
    return iso(utcnow() - timedelta(hours=hours))


def build_live_model(
    model: str = MODEL,
    *,
    version: str = "3",
    endpoint: str | None = None,
    deployed_at: str | None = None,
    **fields: Any,
) -> ModelRecord:
    """A model live on ``version`` (desired = live, deployment ``v{version}``) behind ``at-{model}``, deployed (and
    last updated) ``deployed_at``, five hours ago unless given; any other field (``state="sleeping"``,
    ``pinned=True``, ``scoring_uri=...``) as given."""
    deployed_at = deployed_at or hours_ago(5)
    record = ModelRecord(
        model=model,
        state="live",
        desired_version=version,
        live_version=version,
        live_deployment=f"v{version}",
        endpoint_name=f"at-{model}" if endpoint is None else endpoint,
        last_deployed_at=deployed_at,
        updated_at=deployed_at,
    )
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def live_model(ledger: Ledger, model: str = MODEL, **kwargs: Any) -> ModelRecord:
    """``build_live_model`` stored in ``ledger``."""
    return ledger.create(build_live_model(model, **kwargs))


def build_run(model: str = MODEL, run_id: str = "", *, state: str = "queued", **fields: Any) -> RunRecord:
    """A run of ``model`` (id ``{model}-run`` unless given) in ``state``; other fields as given."""
    record = RunRecord(model=model, run_id=run_id or f"{model}-run", state=state)
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def run(ledger: Ledger, model: str = MODEL, run_id: str = "", **kwargs: Any) -> RunRecord:
    """``build_run`` stored in ``ledger``."""
    return ledger.create(build_run(model, run_id, **kwargs))


def build_dataset(
    model: str = MODEL, dataset_id: str = "0" * 16, *, state: str = "prepared", **fields: Any
) -> DatasetRecord:
    """A dataset of ``model`` in ``state``; other fields as given."""
    record = DatasetRecord(model=model, dataset_id=dataset_id, state=state)
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def dataset(ledger: Ledger, model: str = MODEL, dataset_id: str = "0" * 16, **kwargs: Any) -> DatasetRecord:
    """``build_dataset`` stored in ``ledger``."""
    return ledger.create(build_dataset(model, dataset_id, **kwargs))


def activity(ledger: Ledger, model: str = MODEL, last_request_at: str | None = None) -> ActivityRecord:
    """The gateway's record of ``model``'s last request (now unless given), upserted."""
    return ledger.upsert(ActivityRecord(model=model, last_request_at=last_request_at or iso()))


__all__ = [
    "MODEL",
    "activity",
    "build_dataset",
    "build_live_model",
    "build_run",
    "dataset",
    "hours_ago",
    "live_model",
    "run",
]
