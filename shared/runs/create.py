"""Creating a run: data that arrives opens the model's ``waiting`` run, or joins the one that is open.

Why one open run per model: ten files dropped in a minute must become one training job, not ten. The model's
``TrainingRecord`` names its open run; opening a new one swaps that name with an ETag-checked write, so two
deliveries arriving at once join the same run. Each change of data (a dataset prepared, excluded, included)
bumps the run's ``details.generation`` and ``last_change_at``: the debounce counts from the last change, and a
run whose data changed while it was being prepared for submission is re-examined instead of leaving without it
(``shared.runs.waiting``). A dataset remembers the run that first gathered it (``DatasetRecord.run_id``), so a
re-delivered blob finds that run instead of opening another.
"""

from __future__ import annotations

import secrets

from shared.ledger import AlreadyExistsError, ConflictError, DatasetRecord, Ledger, RunRecord, TrainingRecord
from shared.runs.context import mutate_run
from shared.timeutil import iso

MAX_CHANGES_KEPT = 20  # the run's details keep the latest changes (what gathered into it), for people to read


def new_run_id(model: str) -> str:
    """``{model}-{12 hex}``: unique per run (a corpus can be trained again, e.g. after an exclusion is undone)."""
    return f"{model}-{secrets.token_hex(6)}"


def gather(ledger: Ledger, model: str, change: str, *, dataset_id: str = "", at: str | None = None) -> RunRecord:
    """Record ``change`` (why the model's data changed) on the model's open ``waiting`` run, opening one if none
    is open; returns that run. Idempotent per call only in effect: a repeat bumps the debounce, never a second run."""
    at = at or iso()
    for _ in range(16):
        pointer = ledger.get(TrainingRecord, "training", model)
        run = _open_run(ledger, model, pointer.open_run_id) if pointer and pointer.open_run_id else None
        if run is None or run.state != "waiting":
            pointer = pointer or TrainingRecord(model=model)
            pointer.open_run_id = new_run_id(model)
            pointer.updated_at = at
            try:
                ledger.save(pointer)
            except (ConflictError, AlreadyExistsError):
                continue  # another delivery opened one meanwhile: join it
            run = _open_run(ledger, model, pointer.open_run_id)
        noted = _note(ledger, run, change, dataset_id, at)
        if noted is not None:
            return noted
    raise ConflictError(f"model {model}: could not join or open a waiting run (too many concurrent changes)")


def _open_run(ledger: Ledger, model: str, run_id: str) -> RunRecord:
    """The run named by the model's record; created ``waiting`` if a crash left the name without the run."""
    found = ledger.get(RunRecord, model, run_id)
    if found is not None:
        return found
    run = RunRecord(model=model, run_id=run_id)
    run.transition("waiting")
    run.details["generation"] = 0
    try:
        return ledger.create(run)
    except AlreadyExistsError:
        existing = ledger.get(RunRecord, model, run_id)
        assert existing is not None
        return existing


def _note(ledger: Ledger, run: RunRecord, change: str, dataset_id: str, at: str) -> RunRecord | None:
    """Add the change to a still-waiting run; None when it left ``waiting`` meanwhile (the caller opens another)."""
    joined = False

    def apply(current: RunRecord) -> bool:
        nonlocal joined
        joined = current.state == "waiting"
        if not joined:
            return False
        changes = list(current.details.get("changes") or [])
        changes.append({"at": at, "change": change})
        current.details["changes"] = changes[-MAX_CHANGES_KEPT:]
        current.details["generation"] = int(current.details.get("generation", 0)) + 1
        current.details["last_change_at"] = max(at, current.details.get("last_change_at", ""))
        if dataset_id:
            current.dataset_id = dataset_id
        current.updated_at = iso()
        return True

    updated = mutate_run(ledger, run, apply)
    return updated if joined else None


def create_run(ledger: Ledger, dataset: DatasetRecord) -> RunRecord:
    """The run that gathers a prepared dataset: the one that already did (a re-delivery), else the model's
    open run, which it joins. The dataset records that run as its ``run_id``."""
    record = ledger.get(DatasetRecord, dataset.model, dataset.dataset_id) or dataset
    if record.run_id:
        existing = ledger.get(RunRecord, record.model, record.run_id)
        if existing is not None:
            return existing
    run = gather(ledger, dataset.model, f"dataset {dataset.dataset_id} prepared", dataset_id=dataset.dataset_id)

    def stamp(current: DatasetRecord | None) -> DatasetRecord | None:
        if current is None or current.run_id:
            return None
        current.run_id = run.run_id
        return current

    ledger.mutate(DatasetRecord, dataset.model, dataset.dataset_id, stamp)
    return run


__all__ = ["create_run", "gather", "new_run_id"]
