"""One reconcile tick: per model, take the next idempotent steps under the model's lease (``reconcile_model``);
the timer's whole pass (``reconcile_all``) and what it did (``TickReport``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from shared.backends.base import EndpointInfo
from shared.ledger import ConflictError, ModelRecord
from shared.reconcile.plan import IDLE, SLEEPING, next_action
from shared.reconcile.steps import TICK_DEADLINE, run_step
from shared.runs.context import RunContext, new_owner
from shared.telemetry import log_context
from shared.timeutil import iso

log = logging.getLogger(__name__)

LEASE_SECONDS = 180.0  # renewed before every step; a crashed holder blocks the model for at most this long
TICK_BUDGET_SECONDS = 20.0  # chain quick steps in one tick, but never keep a timer busy for long
MAX_STEPS_PER_TICK = 12


@dataclass
class TickReport:
    """What one timer tick did: per run (backstop), per model (the actions taken, in order), per model whose
    platform state drifted
    (``drift``), per orphan deployment suspect (``orphans``, ``"endpoint/deployment"``) and per sleeping model
    whose failed wake was retried automatically (``wakes``), per prepared dataset that no run had gathered
    (``gathered``, ``"model/dataset_id"``), and per corpus snapshot deleted by retention (``corpora``,
    ``"model/corpus_id"``; a model skipped or failed under its own name)."""

    started_at: str = field(default_factory=iso)
    runs: dict[str, str] = field(default_factory=dict)
    models: dict[str, list[str]] = field(default_factory=dict)
    drift: dict[str, str] = field(default_factory=dict)
    orphans: dict[str, str] = field(default_factory=dict)
    wakes: dict[str, str] = field(default_factory=dict)
    gathered: dict[str, str] = field(default_factory=dict)
    corpora: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "runs": self.runs,
            "models": self.models,
            "drift": self.drift,
            "orphans": self.orphans,
            "wakes": self.wakes,
            "gathered": self.gathered,
            "corpora": self.corpora,
        }


def reconcile_model(
    ctx: RunContext,
    model: str,
    *,
    budget_seconds: float = TICK_BUDGET_SECONDS,
    stop_before: frozenset[str] = frozenset(),
) -> list[str]:
    """Advance one model as far as it can go without waiting; returns the actions taken (``idle`` when none).

    ``stop_before`` names steps left to the timer (the job-event handler must answer Event Grid within 30 s,
    so it never runs the smoke test, which may take a scoring request's full timeout).
    """
    record = ctx.ledger.get(ModelRecord, "models", model)
    if record is None:
        return ["unknown model"]
    first = next_action(record)
    if first in (IDLE, SLEEPING):
        return [first]  # the common case, decided without writing a lease
    owner = new_owner("reconcile")
    lease = f"model:{model}"
    if not ctx.ledger.acquire_lease(lease, owner, LEASE_SECONDS):
        return ["skipped: another worker holds the lease"]
    actions: list[str] = []
    deadline = time.monotonic() + budget_seconds
    tick = TICK_DEADLINE.set(deadline)  # a step that can stop anywhere (the evaluation) ends with the tick
    try:
        for _ in range(MAX_STEPS_PER_TICK):
            record = ctx.ledger.get(ModelRecord, "models", model)
            if record is None:
                actions.append("unknown model")
                break
            action = next_action(record)
            if action in (IDLE, SLEEPING):
                if not actions:
                    actions.append(action)
                break
            if action in stop_before:
                actions.append(f"{action}: left for the next tick")
                break
            if not ctx.ledger.acquire_lease(lease, owner, LEASE_SECONDS):
                actions.append("lost the lease")
                break
            go_on = run_step(ctx, record, action)
            actions.append(action)
            if not go_on or time.monotonic() > deadline:
                break
    except ConflictError:
        actions.append("conflict: the model changed meanwhile; next tick resumes")
        log.info("model %s changed while reconciling; resuming next tick", model)
    finally:
        TICK_DEADLINE.reset(tick)
        ctx.ledger.release_lease(lease, owner)
    return actions


def reconcile_all(ctx: RunContext | None = None) -> TickReport:
    """The timer's tick: the backstop over unfinished runs, failed wakes retried when due, drift repaired, every
    model's next steps, orphan deployments and old corpus snapshots deleted. Crashed preparations are re-driven
    by their own timer (``redrive_preparations``), never here: a preparation may take minutes, the deployment
    steps must not wait."""
    from shared.reconcile.backstop import tend_runs
    from shared.reconcile.corpora import collect_corpora
    from shared.reconcile.datasets import gather_stray_datasets
    from shared.reconcile.drift import repair_drift
    from shared.reconcile.gc import collect_orphans
    from shared.reconcile.wake import retry_due_wakes

    ctx = ctx or RunContext.default()
    report = TickReport()
    report.gathered = gather_stray_datasets(ctx)
    report.runs = tend_runs(ctx)
    report.wakes = retry_due_wakes(ctx)
    endpoints = _managed_endpoints(ctx)
    if endpoints is not None:
        report.drift = repair_drift(ctx, endpoints)
    names = sorted({record.model for record in ctx.ledger.query(ModelRecord)})
    for name in names:
        try:
            with log_context(model=name):
                report.models[name] = reconcile_model(ctx, name)
        except Exception as exc:  # one model's trouble must not stop the others
            log.exception("reconciling model %s failed", name)
            report.models[name] = [f"error: {exc}"]
    if endpoints is not None:
        report.orphans = collect_orphans(ctx, endpoints)
    report.corpora = collect_corpora(ctx, names)
    busy = {name: steps for name, steps in report.models.items() if steps not in (["idle"], ["sleeping"])}
    log.info(
        "reconcile tick: runs %s, drift %s, models %s, orphans %s, corpora %s",
        report.runs,
        report.drift,
        busy,
        {key: value for key, value in report.orphans.items() if value != "kept: referenced"},
        report.corpora,
    )
    return report


def _managed_endpoints(ctx: RunContext) -> list[EndpointInfo] | None:
    """The platform's managed endpoints, listed once per tick for drift repair and garbage collection; None
    (both skipped this tick) when the platform cannot be asked."""
    try:
        return ctx.backend.list_managed_endpoints()
    except Exception as exc:  # noqa: BLE001 - housekeeping waits for the next tick; deployments go on
        log.warning("could not list the managed endpoints (drift and orphan checks skipped this tick): %s", exc)
        return None


__all__ = ["TickReport", "reconcile_all", "reconcile_model"]
