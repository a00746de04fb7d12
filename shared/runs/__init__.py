"""Runs: one prepared dataset going through train -> register -> deploy.

``start_run_for_dataset`` is what ingestion calls once a dataset is prepared; it is idempotent (one run per
model and dataset, whatever the number of deliveries).
"""

from __future__ import annotations

from shared.ledger import AlreadyExistsError, DatasetRecord, Ledger, RunRecord
from shared.names import run_id_for


def start_run_for_dataset(ledger: Ledger, dataset: DatasetRecord) -> RunRecord:
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
