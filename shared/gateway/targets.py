"""Model name -> where to send its scoring requests, cached in memory so the hot path never touches storage.

Why a cache: the model's state lives in the ledger (Table storage) and the endpoint key behind the platform's
REST API; both are a network round trip away, and neither changes between two requests. An entry for a
servable model lives ``ENDPOINT_CACHE_TTL_SECONDS``; an entry for a model that cannot serve (sleeping,
deploying, unknown) lives at most ``NOT_SERVING_TTL`` seconds, so a model that has just come up serves soon.
Loads are single-flight per model (one ledger read however many requests arrive at once), and so are the
look-ups after an upstream failure, whose answer is reused for ``RECHECK_TTL`` seconds.

The scoring target comes from ``backend.scoring_target(endpoint)``: the Azure ML backend gets it over REST, the
local backend from its state files; ``azure.ai.ml`` is never imported here. ``set_resolver`` is the one seam
for tests that need an upstream the platform cannot produce (one that fails on purpose).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.backends.base import ScoringTarget
from shared.ledger import Ledger, ModelRecord
from shared.names import InvalidNameError, validate_model_name

__all__ = ["Route", "TargetCache", "default_resolver", "set_resolver"]

NOT_SERVING_TTL = 5.0
# After an upstream failure (404/5xx, unreachable) the route is looked up again, once per model however many
# requests failed, and that answer serves every further failure for this long (a negative cache of sorts).
RECHECK_TTL = 5.0
# The reconciler keeps a model "live" while its live version serves (a new version rolling out included, and
# after a failed rollout that kept the old one); "deploying" means nothing serves yet.
SERVING_STATES = ("live",)

Resolver = Callable[[ModelRecord], ScoringTarget]


def default_resolver(record: ModelRecord) -> ScoringTarget:
    """The platform's scoring target for the model's endpoint (traffic split as the reconciler set it)."""
    from shared.backends import get_backend

    return get_backend().scoring_target(record.endpoint_name)


_resolver_override: Resolver | None = None


def set_resolver(resolver: Resolver | None) -> None:
    """Replace how targets are resolved (tests pointing at a deliberately failing stub); None restores the backend."""
    global _resolver_override
    _resolver_override = resolver


def _resolve(record: ModelRecord) -> ScoringTarget:
    return (_resolver_override or default_resolver)(record)


@dataclass(frozen=True)
class Route:
    """What the gateway knows about a model: its state and, when it can serve, its target."""

    model: str
    exists: bool
    state: str = ""
    live_version: str = ""
    waking: bool = False
    target: ScoringTarget | None = None
    error: str = ""
    wake_retry_at: str = ""  # a sleeping model whose last wake failed: requests wake it again after this

    @property
    def servable(self) -> bool:
        return self.target is not None


def _waking(record: ModelRecord) -> bool:
    """Woken from sleep and not live yet: its endpoint was deleted, so the old live version cannot answer."""
    return record.state == "deploying" and bool(record.slept_at) and record.sleep_reason.startswith("woken")


def route_for(record: ModelRecord | None, model: str) -> Route:
    """Turn a ledger record into a route, resolving the scoring target when the model can serve."""
    if record is None:
        return Route(model=model, exists=False)
    route = Route(
        model=model,
        exists=True,
        state=record.state,
        live_version=record.live_version,
        waking=_waking(record),
        error=record.error,
        wake_retry_at=str((record.wake_retry or {}).get("at", "")) if record.state == "sleeping" else "",
    )
    if record.state in SERVING_STATES and record.live_version and record.endpoint_name and not route.waking:
        return Route(**{**route.__dict__, "target": _resolve(record)})
    return route


class TargetCache:
    """Routes per model with a TTL; ``get`` is a dict lookup, ``load`` does the (blocking) round trips."""

    def __init__(self, ledger: Ledger, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ledger = ledger
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Route]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._rechecked: dict[str, tuple[float, Route]] = {}
        self._guard = threading.Lock()

    def get(self, model: str) -> Route | None:
        """The cached route if still fresh (no I/O)."""
        entry = self._entries.get(model)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    def load(self, model: str, *, force: bool = False) -> Route:
        """Read the model's record and resolve its target (blocking; call it off the event loop)."""
        try:
            validate_model_name(model)
        except InvalidNameError:
            return Route(model=model, exists=False)
        with self._lock_for(model):
            if not force and (cached := self.get(model)) is not None:
                return cached  # someone else loaded it while we waited
            return self._load_locked(model)

    def _lock_for(self, model: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(model, threading.Lock())

    def _load_locked(self, model: str) -> Route:
        record = self._ledger.get(ModelRecord, "models", model)
        route = route_for(record, model)
        ttl = self._ttl if route.servable else min(self._ttl, NOT_SERVING_TTL)
        if ttl > 0:
            self._entries[model] = (self._clock() + ttl, route)
        else:
            self._entries.pop(model, None)
        return route

    def recheck(self, model: str) -> Route:
        """The route looked up again after its endpoint failed: at most one look-up per ``RECHECK_TTL`` per model.

        Requests failing at the same time wait on the one look-up in flight (the per-model lock) and share its
        answer, as do the failures of the next ``RECHECK_TTL`` seconds: an endpoint answering 503 to a storm of
        requests costs a handful of ledger reads and platform calls, not one per request.
        """
        with self._lock_for(model):
            checked = self._rechecked.get(model)
            if checked is not None and checked[0] > self._clock():
                return checked[1]
            route = self._load_locked(model)
            self._rechecked[model] = (self._clock() + RECHECK_TTL, route)
            return route

    def invalidate(self, model: str) -> None:
        self._entries.pop(model, None)
        self._rechecked.pop(model, None)
