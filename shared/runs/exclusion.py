"""Removing data from a model: a dataset excluded from every later corpus (and included again).

Why exclusion and not deletion: the upload and the prepared files are the evidence of what a model was trained
on (earlier runs' manifests name them); nothing is ever lost. Excluding changes the model's corpus, so it
gathers a run like new data does (debounce included); and since a model trained after the removal must never
have seen the data, a job still training on the dataset is canceled (a corpus already built stays as it was: it
is what that run trained on).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import BadInput, NotFound
from shared.ledger import DatasetRecord, RunRecord
from shared.names import validate_model_name
from shared.runs.context import JOB_ACTIVE, RunContext, run_ids
from shared.runs.create import gather
from shared.timeutil import iso

log = logging.getLogger(__name__)


def set_excluded(ctx: RunContext, model: str, dataset_id: str, excluded: bool) -> tuple[DatasetRecord, str]:
    """Exclude (or include again) a dataset; returns its record and the run that gathers the change ("" when the
    flag was already so, or the dataset is not prepared: it is in no corpus then)."""
    from shared.uploads import DATASET_ID_RE

    validate_model_name(model)
    if not DATASET_ID_RE.fullmatch(dataset_id):
        raise BadInput("dataset ids are 16 lowercase hex characters", code="invalid_dataset_id", field="dataset_id")
    changed = False
    stamp = iso()

    def change(current: DatasetRecord | None) -> DatasetRecord | None:
        nonlocal changed
        if current is None:
            raise NotFound(
                f"no dataset {dataset_id} for model {model!r} (GET /api/models/{model}/datasets lists them)",
                code="dataset_not_found",
                field="dataset_id",
            )
        changed = current.excluded != excluded
        if not changed:
            return None
        current.excluded = excluded
        current.excluded_at = stamp if excluded else ""
        current.updated_at = stamp
        return current

    record = ctx.ledger.mutate(DatasetRecord, model, dataset_id, change)
    assert record is not None
    if not changed or record.state != "prepared":
        return record, ""
    verb = "excluded" if excluded else "included again"
    log.info("dataset %s of model %s %s", dataset_id, model, verb, extra={"model": model, "dataset_id": dataset_id})
    run = gather(ctx.ledger, model, f"dataset {dataset_id} {verb}", at=stamp)
    if excluded:
        _cancel_jobs_training_on(ctx, model, dataset_id, run)
    from shared.runs.waiting import advance_model

    try:
        advance_model(ctx, model, build_seconds=None)  # an HTTP request: the corpus is built by the next tick
    except Exception:  # the exclusion is recorded; the reconciler moves the run on
        log.exception("could not move run %s on now; the reconciler will", run.run_id, extra=run_ids(run))
    return record, run.run_id


def _cancel_jobs_training_on(ctx: RunContext, model: str, dataset_id: str, run: RunRecord) -> None:
    from shared.runs.views import RunStateError, cancel_run

    for other in ctx.ledger.query_eq(RunRecord, PartitionKey=model):
        members = {d.get("dataset_id") for d in (other.corpus or {}).get("datasets") or []}
        if other.state in JOB_ACTIVE and (dataset_id in members or other.dataset_id == dataset_id):
            reason = f"canceled: dataset {dataset_id} was excluded; run {run.run_id} trains without it"
            try:
                cancel_run(ctx, other.run_id, reason=reason)
            except RunStateError as exc:  # it ended meanwhile, or is busy: its model is replaced by the next run
                log.warning("run %s trains on excluded data and could not be canceled: %s", other.run_id, exc)


def exclusion_view(record: DatasetRecord, run_id: str) -> dict[str, Any]:
    """The dataset as the API shows it, with the run that trains on the change."""
    from shared.uploads import dataset_view

    view = dataset_view(record)
    view["gathered_by_run_id"] = run_id or None
    if run_id:
        view["change_run_url"] = f"/api/runs/{run_id}"
    return view


__all__ = ["exclusion_view", "set_excluded"]
