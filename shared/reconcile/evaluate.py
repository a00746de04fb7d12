"""The rollout's ``evaluate`` step: between the smoke test and any traffic, champion vs challenger.

Why a step of its own, spread over ticks: the new deployment (challenger) and the live one (champion) answer
the same held-out conversations through the endpoint, pinned by the ``azureml-model-deployment`` header, and
that can take minutes. Each tick scores one slice (``shared.evaluation.runner``) until the tick's deadline,
the evaluation blob keeps every answer and the model's ``deployment["evaluation"]`` a cursor, so a crash
resumes where it stopped and nothing recorded is asked again. The job-event handler never runs this step
(``stop_before``): it must answer Event Grid within seconds.

A champion that is not deployed (the model slept, and a newer version is rolled out on wake) is not asked: its
answers recorded by an earlier evaluation are copied into the plan before anything is asked
(``shared.evaluation.recorded``), so a crash or a later tick resumes with the same stand-in; with no usable record
the challenger is judged alone and the reason says why.

When the last answer is in, the gate decides (``shared.evaluation.gate``): promoted -> ``traffic``; held or
awaiting approval -> the new deployment is deleted, the champion keeps all traffic, the run says why and
``Autotune.RunHeld`` is published. Nothing is evaluated when the version is already the live one (a wake or a
redeploy) or when a person promoted it (``POST /api/runs/{run_id}/promote``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.backends.base import DeploymentPhase
from shared.evaluation.gate import (
    AWAITING_APPROVAL,
    HELD,
    OVERRIDDEN,
    PROMOTED,
    Thresholds,
    decide,
    evaluation_view,
    summarise_record,
)
from shared.evaluation.plan import Asleep, Contestant, plan_evaluation
from shared.evaluation.recorded import find_recorded
from shared.evaluation.runner import CHAMPION, EvalConflictError, EvalStore, pending_tasks, score_slice
from shared.evaluation.sources import eval_blob
from shared.ledger import ModelRecord, RunRecord
from shared.notify import RUN_HELD, publish
from shared.reconcile import steps
from shared.reconcile.plan import EVALUATE, TRAFFIC
from shared.runs.context import RunContext, is_forward, mutate_run, run_ids
from shared.timeutil import iso

log = logging.getLogger(__name__)

__all__ = ["evaluate", "evaluation_boundary", "skip_reason"]

DEFAULT_SLICE_SECONDS = 20.0  # when no tick deadline is set (a step run outside reconcile_model)


def evaluation_boundary(model: str, done: int) -> None:
    """Called after each batch of answers is recorded. A no-op; tests replace it to inject a crash."""


def skip_reason(model: ModelRecord, run: RunRecord | None) -> str:
    """Why this rollout needs no evaluation ("" when it does)."""
    progress = model.deployment
    if run is None:
        return f"no run record for version {progress.get('version')}: nothing to evaluate it on"
    if model.live_run_id and run.run_id == model.live_run_id:
        return "the live version is being redeployed (a wake): nothing new to compare"
    evaluation = run.evaluation or {}
    if evaluation.get("decision") == OVERRIDDEN:
        override = evaluation.get("override") or {}
        return f"promoted by request at {override.get('at', '?')} (was {override.get('previous_decision', '?')})"
    return ""


def evaluate(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    run = steps._run(ctx, model, progress.get("run_id", ""))
    skipped = skip_reason(model, run)
    if skipped or run is None:
        log.info("model %s: no evaluation of %s: %s", model.model, name, skipped)
        progress["evaluation"] = {"skipped": skipped}
        progress["step"] = TRAFFIC
        steps._save(ctx, model, EVALUATE)
        return True
    state = ctx.backend.get_deployment(endpoint, name)
    if state.phase != DeploymentPhase.SUCCEEDED:
        detail = f": {state.error}" if state.error else ""
        return steps.rollback(
            ctx, model, f"deployment {name} became {state.phase} during the evaluation{detail}", EVALUATE
        )
    store = EvalStore(ctx.settings, eval_blob(model.model, run.run_id))
    try:
        return _evaluate(ctx, model, run, store)
    except EvalConflictError as exc:  # another worker wrote the blob (a lease that expired): it goes on from there
        log.warning(
            "model %s: evaluation of %s changed under this worker (%s); the next tick resumes", model.model, name, exc
        )
        return False


def _evaluate(ctx: RunContext, model: ModelRecord, run: RunRecord, store: EvalStore) -> bool:
    progress = model.deployment
    endpoint = progress["endpoint"]
    record = store.load()
    if record is None or record.get("rollout") != progress.get("started_at"):
        record = _plan(ctx, model, run)
        store.save(record)
        progress["evaluation"] = {"blob": store.path, "requests": len(pending_tasks(record)), "done": 0}
        steps._save(ctx, model)
    cursor = progress.setdefault("evaluation", {"blob": store.path, "requests": len(pending_tasks(record))})
    total = int(cursor.get("requests") or 0)

    def after_batch(current: dict[str, Any]) -> None:
        cursor["done"] = total - len(pending_tasks(current))
        steps._save(ctx, model)
        evaluation_boundary(model.model, cursor["done"])

    def resolve(side: str) -> Any:
        return ctx.backend.scoring_target(endpoint, record[side]["deployment"])

    score_slice(store, record, resolve, ctx.settings, _deadline(), after_batch)
    if pending_tasks(record):
        return False  # the next tick goes on
    return _decide(ctx, model, run, store, record)


def _deadline() -> float:
    return steps.TICK_DEADLINE.get() or time.monotonic() + DEFAULT_SLICE_SECONDS


def _plan(ctx: RunContext, model: ModelRecord, run: RunRecord) -> dict[str, Any]:
    progress = model.deployment
    previous = progress.get("previous", "")
    champion_run = steps._run(ctx, model, model.live_run_id) if model.live_run_id else None
    champion = Contestant(model.live_version, model.live_run_id, previous) if previous else None
    asleep = _asleep(ctx, model) if champion is None else None
    record = plan_evaluation(
        ctx.settings,
        rollout=progress.get("started_at", ""),
        challenger_run=run,
        challenger=Contestant(progress["version"], run.run_id, progress["name"]),
        champion_run=champion_run if champion is not None or asleep is not None else None,
        champion=champion,
        asleep=asleep,
    )
    gate_count = sum(1 for e in record["examples"] if e["set"] == "gate")
    recorded = (record.get(CHAMPION) or {}).get("recorded")
    log.info(
        "model %s: evaluating %s on %d conversations (%s)%s",
        model.model,
        progress["name"],
        gate_count,
        record["source"].get("kind"),
        f" against {previous}"
        if champion
        else f" against version {model.live_version} as recorded in {recorded['blob']}"
        if recorded
        else f" (no champion: {record['source'].get('champion_absent') or 'a first version'})",
    )
    return record


def _asleep(ctx: RunContext, model: ModelRecord) -> Asleep | None:
    """The live version when it is not deployed on the endpoint (the model slept), with its recorded
    evaluations (``shared.evaluation.recorded``); None when there is no other live version."""
    if not model.live_version or model.live_version == model.deployment.get("version"):
        return None
    runs = ctx.ledger.query_eq(RunRecord, PartitionKey=model.model)
    recorded, missing = find_recorded(ctx.settings, runs, model.live_version, model.live_run_id)
    return Asleep(model.live_version, model.live_run_id, recorded, missing)


def _decide(ctx: RunContext, model: ModelRecord, run: RunRecord, store: EvalStore, record: dict[str, Any]) -> bool:
    progress = model.deployment
    record.setdefault("finished_at", iso())
    summary = summarise_record(record)
    policy = ctx.settings.promotion_policy
    decision, reason = decide(policy, summary, Thresholds.from_settings(ctx.settings))
    if record.get(CHAMPION) is None and record["source"].get("champion_absent"):
        reason = f"{reason} (no champion to compare with: {record['source']['champion_absent']})"
    if record.get("decision") != decision or record.get("reason") != reason or record.get("policy") != policy:
        record.update(policy=policy, summary=summary, decision=decision, reason=reason)
        store.save(record)
    view = evaluation_view(record, summary, decision, reason, store.path)
    progress.setdefault("evaluation", {})["decision"] = decision
    log.info("model %s: evaluation of %s: %s: %s", model.model, progress["name"], decision, reason)
    if decision == PROMOTED:
        mutate_run(ctx.ledger, run, lambda current: _keep(current, view))
        progress["step"] = TRAFFIC
        steps._save(ctx, model, EVALUATE)
        return True
    return hold(ctx, model, run, view)


def _keep(run: RunRecord, view: dict[str, Any]) -> bool:
    if run.evaluation == view:
        return False
    run.evaluation = view
    return True


def hold(ctx: RunContext, model: ModelRecord, run: RunRecord, view: dict[str, Any]) -> bool:
    """The gate stopped the version (or it waits for a person): the champion keeps all traffic, the new
    deployment goes, the run says why and the team hears of it."""
    progress = model.deployment
    endpoint, name, version = progress["endpoint"], progress["name"], progress["version"]
    decision, reason = view["decision"], view["reason"]
    state = HELD if decision == HELD else AWAITING_APPROVAL
    changed = False

    def change(current: RunRecord) -> bool:
        nonlocal changed
        changed = is_forward(current.state, state)
        if changed:
            current.evaluation = view
            current.transition(state, error=f"held by the promotion gate: {reason}" if state == HELD else "")
        return changed

    updated = mutate_run(ctx.ledger, run, change)
    serving = model.state == "live" and bool(model.live_deployment)
    # Woken with a newer version that the gate stopped: the sleeping champion is redeployed instead, so whoever
    # woke the model gets an answer from the version that served before.
    waking = bool(progress.get("wake")) and not serving and bool(model.live_version)
    if serving:
        model.state = "live"
    else:
        model.state = "deploying" if waking else ("failed" if state == HELD else "new")
    what = "held by the promotion gate" if state == HELD else "awaits approval"
    model.error = f"version {version} ({name}) {what}: {reason}"
    # Desired falls back to what serves, so the held version is not rolled out again every tick; promoting
    # the run (or a newer run) starts the next rollout.
    model.desired_version, model.desired_run_id = model.live_version, model.live_run_id
    model.deployment = {"wake": progress["wake"]} if waking else {}
    steps._save(ctx, model, EVALUATE)  # the step's outcome: its crash points are the step's own
    if name != model.live_deployment:
        steps._delete_quietly(ctx, endpoint, name)
    log.warning("model %s: %s", model.model, model.error)
    if changed:
        publish(
            ctx.settings,
            RUN_HELD,
            f"models/{model.model}/runs/{updated.run_id}",
            {
                **run_ids(updated),
                "version": version,
                "decision": decision,
                "reason": reason,
                "champion": view.get("champion"),
                "challenger": view.get("challenger"),
                "difference": view.get("difference"),
            },
        )
    return False
