"""The model lease as a context manager, for the reconciler's housekeeping (drift repair, garbage collection).

Why the same lease as the rollout: ``model:{model}`` is what ``reconcile_model`` and the sweeper hold while they
change a model or its endpoint, so housekeeping that holds it never decides on a picture another worker is
changing. Not getting it is normal (someone is working on the model): the next tick looks again.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from shared.runs.context import RunContext, held_lease

HOUSEKEEPING_LEASE_SECONDS = 60.0  # a few platform calls; a crashed holder blocks the model at most this long


def model_lease_name(model: str) -> str:
    return f"model:{model}"


def model_lease(
    ctx: RunContext, name: str, kind: str, seconds: float = HOUSEKEEPING_LEASE_SECONDS
) -> AbstractContextManager[bool]:
    """Hold the lease ``name`` for the block; yields False (and holds nothing) when another worker has it: one try,
    the next tick looks again."""
    return held_lease(ctx, name, kind, seconds)


__all__ = ["HOUSEKEEPING_LEASE_SECONDS", "model_lease", "model_lease_name"]
