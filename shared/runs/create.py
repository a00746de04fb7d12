"""Creating a run: one per (model, dataset), idempotent, so a re-delivered trigger finds the run it made before."""

from __future__ import annotations

from shared.ledger import AlreadyExistsError, DatasetRecord, Ledger, RunRecord
from shared.names import run_id_for


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


__all__ = ["create_run"]
