"""Ending a run that cannot go on: the reason worded for whoever must act, the run ``failed`` (or ``canceled``)
with its data kept, and the team told. Used by submission, job outcomes, the reconciler and the runs API."""

from __future__ import annotations

import logging
from typing import Any

from shared.ledger import RunRecord
from shared.notify import RUN_FAILED, publish
from shared.runs.context import RunContext, is_forward, mutate_run, run_ids

log = logging.getLogger(__name__)


def user_reason(exc: BaseException) -> str:
    """The message recorded on the run: the backend's words plus the setting to change, when it names one."""
    message = str(exc) or type(exc).__name__
    setting = getattr(exc, "setting", None)
    if setting and setting not in message:
        message = f"{message} (setting: {setting})"
    return message


def fail_run(ctx: RunContext, run: RunRecord, reason: str, *, state: str = "failed", **details: Any) -> RunRecord:
    """End a run as failed/canceled with ``reason`` (data and dataset are kept) and tell the team."""

    changed = False

    def change(current: RunRecord) -> bool:
        nonlocal changed
        changed = is_forward(current.state, state)
        if changed:
            current.details.update(details)
            current.transition(state, error=reason)
        return changed

    updated = mutate_run(ctx.ledger, run, change)
    if changed:
        log.warning("run %s %s: %s", updated.run_id, state, reason, extra=run_ids(updated))
        publish(
            ctx.settings,
            RUN_FAILED,
            f"models/{updated.model}/runs/{updated.run_id}",
            {**run_ids(updated), "state": state, "error": reason},
        )
    return updated


__all__ = ["fail_run", "user_reason"]
