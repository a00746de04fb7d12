"""A person's word on a gated version: promote it anyway, or reject one that waits for approval.

Why these two actions: the gate (``PROMOTION_POLICY=gate``) errs on the side of the live version, and
``manual`` waits for a person by design, so an operator must be able to overrule either, with the override on
record (``evaluation.decision`` becomes ``overridden``, with the time and what the gate had said). Promoting
makes the run's version the model's desired one again; the reconciler then rolls it out as usual and skips the
evaluation (it was evaluated already). A held or waiting version's deployment was deleted when it stopped (no
GPU bills while it waits for a person), so promoting redeploys it: minutes locally, 10-30 on Azure ML.

Promoting never goes back in time: a run older than the model's live or desired run is refused (409), as
"newer wins" everywhere else.
"""

from __future__ import annotations

import logging

from shared.errors import Conflict
from shared.evaluation.gate import AWAITING_APPROVAL, HELD, OVERRIDDEN, REJECTED
from shared.ledger import ModelRecord, RunRecord
from shared.runs.context import RunContext, find_run, mutate_run, run_ids, run_is_newer
from shared.timeutil import iso

log = logging.getLogger(__name__)

__all__ = ["PromotionStateError", "promote_run", "reject_run", "supersede_waiting"]

PROMOTABLE = frozenset({HELD, AWAITING_APPROVAL})


class PromotionStateError(Conflict, RuntimeError):
    """The run cannot be promoted or rejected in its state (the API answers 409 and says why)."""

    code = "run_not_promotable"


def _promoted_but_not_desired(run: RunRecord, model: ModelRecord | None) -> bool:
    """A promotion recorded on the run whose model update was lost (a crash in between): finish it."""
    return (
        run.state == "deploying"
        and (run.evaluation or {}).get("decision") == OVERRIDDEN
        and (model is None or model.desired_run_id != run.run_id)
    )


def promote_run(ctx: RunContext, run_id: str) -> RunRecord | None:
    """Deploy a held or waiting run's version despite its evaluation. None when there is no such run."""
    run = find_run(ctx.ledger, run_id)
    if run is None:
        return None
    model = ctx.ledger.get(ModelRecord, "models", run.model)
    if run.state not in PROMOTABLE and not _promoted_but_not_desired(run, model):
        raise PromotionStateError(
            f"run {run_id} is {run.state}; only held or awaiting_approval runs can be promoted"
            + (" (it is deploying after a promotion already)" if run.state == "deploying" else "")
        )
    if not run.registered_version:
        raise PromotionStateError(f"run {run_id} has no registered model version to deploy")
    _refuse_older(ctx, run, model)
    stamp = iso()

    def change(current: RunRecord) -> bool:
        if current.state not in PROMOTABLE:
            return False  # a retried call after the run was updated: only the model is left to do
        evaluation = dict(current.evaluation or {})
        evaluation["override"] = {"at": stamp, "previous_decision": evaluation.get("decision") or current.state}
        evaluation["decision"] = OVERRIDDEN
        current.evaluation = evaluation
        current.error = ""
        current.transition("deploying", at=stamp)
        return True

    run = mutate_run(ctx.ledger, run, change)

    def desire(current: ModelRecord | None) -> ModelRecord | None:
        current = current or ModelRecord(model=run.model)
        current.desired_version, current.desired_run_id = run.registered_version, run.run_id
        if current.state in ("new", "failed"):
            current.state = "deploying"
        current.error = ""
        current.updated_at = iso()
        return current

    ctx.ledger.mutate(ModelRecord, "models", run.model, desire)
    log.warning(
        "run %s promoted by request: version %s will be deployed despite its evaluation",
        run.run_id,
        run.registered_version,
        extra=run_ids(run),
    )
    return run


def _refuse_older(ctx: RunContext, run: RunRecord, model: ModelRecord | None) -> None:
    if model is None:
        return
    for rival_id in {model.desired_run_id, model.live_run_id} - {"", run.run_id}:
        rival = ctx.ledger.get(RunRecord, run.model, rival_id)
        if rival is not None and rival.state not in ("failed", "canceled") and run_is_newer(rival, run):
            raise PromotionStateError(
                f"run {run.run_id} is older than run {rival.run_id} (version {rival.registered_version or '?'}, "
                f"{rival.state}); newer versions win, so an older one is not promoted over it"
            )


def reject_run(ctx: RunContext, run_id: str) -> RunRecord | None:
    """End a run that waits for approval: ``held``, decision ``rejected``. None when there is no such run."""
    run = find_run(ctx.ledger, run_id)
    if run is None:
        return None
    stamp = iso()

    def change(current: RunRecord) -> bool:
        if current.state != AWAITING_APPROVAL:
            raise PromotionStateError(f"run {run_id} is {current.state}; only runs awaiting approval can be rejected")
        evaluation = dict(current.evaluation or {})
        evaluation.update(decision=REJECTED, rejected_at=stamp)
        current.evaluation = evaluation
        current.transition(HELD, error=f"rejected by request at {stamp}", at=stamp)
        return True

    run = mutate_run(ctx.ledger, run, change)
    waiting = f"version {run.registered_version} ("

    def note(current: ModelRecord | None) -> ModelRecord | None:
        if current is None or not current.error.startswith(waiting) or "awaits approval" not in current.error:
            return None
        current.error = f"version {run.registered_version} was rejected by request at {stamp}"
        current.updated_at = iso()
        return current

    ctx.ledger.mutate(ModelRecord, "models", run.model, note)
    log.info("run %s rejected by request", run.run_id, extra=run_ids(run))
    return run


def supersede_waiting(ctx: RunContext, live: RunRecord) -> list[str]:
    """Runs older than the one now live that still await approval give way to it (the approval queue clears)."""
    from shared.runs.outcome import supersede

    cleared = []
    for waiting in ctx.ledger.query_eq(RunRecord, PartitionKey=live.model, state=AWAITING_APPROVAL):
        if waiting.run_id != live.run_id and run_is_newer(live, waiting):
            supersede(ctx, waiting, by=live.run_id)
            cleared.append(waiting.run_id)
    if cleared:
        log.info("runs %s no longer await approval: run %s is live", ", ".join(cleared), live.run_id)
    return cleared
