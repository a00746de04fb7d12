"""Runs: one prepared dataset going through train -> register -> deploy.

States (the run's ``timeline`` stamps each): ``queued`` (created, job not yet accepted) -> ``submitted`` (the
platform has the job) -> ``running`` -> ``completed`` (job done) -> ``registered`` (model version exists; the
model's desired version) -> ``deploying`` (the reconciler is rolling it out) -> ``live``. Ends: ``failed`` (with
the reason), ``canceled``, ``superseded`` (a newer run replaced it, before or after it was live).

- ``submit``: ingestion's entry point ``start_run_for_dataset`` and the idempotent job submission;
- ``outcome``: what a job's completion/failure does (shared by the Event Grid handler and the backstop poll);
- ``views``: the runs API (list, detail, cancel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.ledger import AlreadyExistsError, DatasetRecord, Ledger, RunRecord
from shared.names import run_id_for

if TYPE_CHECKING:
    from shared.runs.context import RunContext


def create_run(ledger: Ledger, dataset: DatasetRecord) -> RunRecord:
    """Create the run for a prepared dataset (state ``queued``), or return the one that exists."""
    run_id = run_id_for(dataset.model, dataset.dataset_id)
    existing = ledger.get(RunRecord, dataset.model, run_id)
    if existing is not None:
        return existing
    run = RunRecord(model=dataset.model, run_id=run_id, dataset_id=dataset.dataset_id)
    run.transition("queued")
    try:
        return ledger.create(run)
    except AlreadyExistsError:
        found = ledger.get(RunRecord, dataset.model, run_id)
        assert found is not None
        return found


def start_run_for_dataset(ledger: Ledger, dataset: DatasetRecord, ctx: RunContext | None = None) -> RunRecord:
    """Create the run for a prepared dataset and submit its job (see ``shared.runs.submit``)."""
    from shared.runs.submit import start_run_for_dataset as start

    return start(ledger, dataset, ctx)


__all__ = ["create_run", "start_run_for_dataset"]
