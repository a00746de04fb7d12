"""Taking traffic back from a deployment that is being given up (abandoned for a newer version, or rolled back).

Why from the endpoint and not from the ledger: a step moves traffic and then records it; a crash or an ETag
conflict in between leaves traffic on the new deployment with nothing in the ledger to say so. Deciding from a
saved ``canary_at`` then deleted (or tried to delete) a deployment that was serving. So the endpoint's actual
traffic decides: a deployment with traffic gets it taken back before anything else happens to it.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.runs.context import RunContext

log = logging.getLogger(__name__)

NONE, RESTORED, CLEARED, SERVING = "none", "restored", "cleared", "serving"


def take_traffic_back(ctx: RunContext, progress: dict[str, Any], *, clear: bool) -> str:
    """Make sure the rollout's deployment serves nothing. Returns ``none`` (it had no traffic), ``restored`` (all
    of it went back to the previous deployment), ``cleared`` (no previous deployment: its share was set to 0,
    only when ``clear``) or ``serving`` (it has traffic and there is nothing to give it back to)."""
    endpoint, name, previous = progress["endpoint"], progress["name"], progress.get("previous", "")
    info = ctx.backend.get_endpoint(endpoint)
    if info is None or not info.traffic.get(name):
        return NONE
    if previous and previous in info.deployments:
        ctx.backend.set_traffic(endpoint, {previous: 100, name: 0})
        log.info("endpoint %s: traffic back to %s (it was %s)", endpoint, previous, dict(info.traffic))
        return RESTORED
    if clear:
        ctx.backend.set_traffic(endpoint, {name: 0})
        log.info("endpoint %s: traffic taken off %s (it was %s)", endpoint, name, dict(info.traffic))
        return CLEARED
    return SERVING


__all__ = ["CLEARED", "NONE", "RESTORED", "SERVING", "take_traffic_back"]
