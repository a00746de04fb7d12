"""What a model has not trained on yet: the datasets its next run would add, and why others are left out.

Why here and not in the models view: "pending" is a question about corpora and runs (the corpus the model would
train on now, against the corpus of the newest run that trains or trained), answered with the same selection a
waiting run uses when it is submitted, so the API never promises data a run would then leave out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.corpus import CorpusOptions, select
from shared.ledger import DatasetRecord, Ledger, RunRecord
from shared.runs.waiting import last_trained
from shared.settings import Settings
from shared.timeutil import utcnow


def training_view(
    ledger: Ledger, settings: Settings, model: str, runs: list[RunRecord], now: datetime | None = None
) -> dict[str, Any]:
    """``{"corpus_mode", "trained", "pending_datasets", "left_out", "waiting_run"}`` for one model."""
    records = ledger.query_eq(DatasetRecord, PartitionKey=model)
    selection = select(model, records, CorpusOptions.from_settings(settings), now or utcnow())
    trained = last_trained(runs)
    in_trained = {d["dataset_id"] for d in (trained.corpus.get("datasets") or [])} if trained else set()
    gathering = {r.dataset_id: r.run_id for r in records}
    pending = [
        {
            "dataset_id": m.dataset_id,
            "prepared_at": m.prepared_at,
            "train": m.train,
            "test": m.test,
            "run_id": gathering.get(m.dataset_id) or None,
        }
        for m in selection.members
        if m.dataset_id not in in_trained
    ]
    waiting = [r for r in runs if r.state == "waiting"]
    newest_waiting = max(waiting, key=lambda r: (r.created_at, r.run_id), default=None)
    return {
        "corpus_mode": settings.corpus_mode,
        "trained": (
            {
                "run_id": trained.run_id,
                "state": trained.state,
                "corpus_id": trained.corpus.get("corpus_id"),
                "datasets": trained.corpus.get("datasets_total") or len(trained.corpus.get("datasets") or []),
                "train": trained.corpus.get("train"),
                "test": trained.corpus.get("test"),
            }
            if trained
            else None
        ),
        "pending_datasets": pending,
        "left_out": selection.left_out,
        "waiting_run": (
            {
                "run_id": newest_waiting.run_id,
                "reason": newest_waiting.details.get("waiting_reason"),
                "not_before": newest_waiting.details.get("not_before"),
            }
            if newest_waiting
            else None
        ),
    }


__all__ = ["training_view"]
