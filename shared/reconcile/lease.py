"""The model lease as a context manager, for the reconciler's housekeeping (drift repair, garbage collection).

Why the same lease as the rollout: ``model:{model}`` is what ``reconcile_model`` and the sweeper hold while they
change a model or its endpoint, so housekeeping that holds it never decides on a picture another worker is
changing. Not getting it is normal (someone is working on the model): the next tick looks again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.runs.context import RunContext, new_owner

HOUSEKEEPING_LEASE_SECONDS = 60.0  # a few platform calls; a crashed holder blocks the model at most this long


def model_lease_name(model: str) -> str:
    return f"model:{model}"


@contextmanager
def model_lease(ctx: RunContext, name: str, kind: str, seconds: float = HOUSEKEEPING_LEASE_SECONDS) -> Iterator[bool]:
    """Hold the lease ``name`` for the block; yields False (and holds nothing) when another worker has it."""
    owner = new_owner(kind)
    if not ctx.ledger.acquire_lease(name, owner, seconds):
        yield False
        return
    try:
        yield True
    finally:
        ctx.ledger.release_lease(name, owner)


__all__ = ["HOUSEKEEPING_LEASE_SECONDS", "model_lease", "model_lease_name"]
