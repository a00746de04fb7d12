"""Model-level state changes shared by several functions (gateway, sweeper, admin API).

States: ``new`` (no version yet), ``deploying`` (the reconciler is working towards ``desired_version``),
``live`` (``live_version`` serves on ``endpoint_name``), ``sleeping`` (endpoint deleted for idleness; the
reconciler leaves it alone until woken), ``failed`` (the last deployment failed; ``error`` says why).
"""

from __future__ import annotations

from shared.ledger import Ledger, ModelRecord
from shared.timeutil import iso


def request_wake(ledger: Ledger, model: str, reason: str = "request") -> bool:
    """Ask the reconciler to redeploy a sleeping model's desired version. True if this call woke it.

    Idempotent: waking a model that is not asleep changes nothing (many requests race to wake it).
    """
    woke = False

    def change(current: ModelRecord | None) -> ModelRecord | None:
        nonlocal woke
        woke = False
        if current is None or current.state != "sleeping" or not current.desired_version:
            return None
        current.state = "deploying"
        current.deployment = {}
        current.error = ""
        current.sleep_reason = f"woken by {reason} at {iso()} (slept: {current.sleep_reason})"
        current.updated_at = iso()
        woke = True
        return current

    ledger.mutate(ModelRecord, "models", model, change)
    return woke
