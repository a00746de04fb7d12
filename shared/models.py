"""Model-level state changes and views shared by several functions (gateway, sweeper, models API).

States: ``new`` (no version yet), ``deploying`` (the reconciler is working towards ``desired_version``),
``live`` (``live_version`` serves on ``endpoint_name``), ``sleeping`` (endpoint deleted for idleness; the
reconciler leaves it alone until woken), ``failed`` (the last deployment failed; ``error`` says why).

The idle arithmetic (last activity, when a model becomes idle, who pinned it) lives here rather than in the
sweeper because the models API shows the same numbers the sweeper acts on: one definition, no drift.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import crashpoints
from shared.ledger import ActivityRecord, Ledger, ModelRecord, RunRecord
from shared.timeutil import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from shared.backends.base import EndpointInfo, MLBackend
    from shared.settings import Settings

log = logging.getLogger(__name__)

WAKE_POINT = "wake"  # the crash point around a wake (shared/crashpoints.py)


def request_wake(
    settings: Settings, ledger: Ledger, model: str, reason: str = "request", *, force: bool = False
) -> bool:
    """Ask the reconciler to redeploy a sleeping model's desired version. True if this call woke it.

    Idempotent: waking a model that is not asleep changes nothing (many requests race to wake it). The call
    that wins the race publishes ``MODEL_WOKE``, so gateway wakes and explicit wakes are both announced.
    After a failed wake, only a ``force``d wake (an operator's ``POST /wake``) tries again before
    ``wake_retry["at"]`` (``wake_blocked_until``): requests do not redeploy in a loop.
    """
    woke = False

    def change(current: ModelRecord | None) -> ModelRecord | None:
        nonlocal woke
        woke = False
        if current is None or current.state != "sleeping" or not current.desired_version:
            return None
        if not force and wake_blocked_until(current) is not None:
            return None
        current.state = "deploying"
        current.deployment = {"wake": reason}  # a failed rollout leaves it asleep, not failed (reconcile/wake.py)
        current.error = ""
        current.sleep_reason = f"woken by {reason} at {iso()} (slept: {current.sleep_reason})"
        current.updated_at = iso()
        woke = True
        return current

    crashpoints.reached(WAKE_POINT, crashpoints.BEFORE, model)
    record = ledger.mutate(ModelRecord, "models", model, change)
    if woke:
        crashpoints.reached(WAKE_POINT, crashpoints.AFTER, model)  # woken in the ledger, not yet announced
    if woke and record is not None:
        from shared.notify import MODEL_WOKE, publish

        log.info("model %s woken by %s", model, reason, extra={"model": model})
        publish(
            settings,
            MODEL_WOKE,
            f"models/{model}",
            {"model": model, "version": record.desired_version, "reason": reason, "slept_at": record.slept_at},
        )
    return woke


def wake_blocked_until(record: ModelRecord, now: datetime | None = None) -> datetime | None:
    """When a sleeping model whose last wake failed may be woken by a request again (None: now)."""
    at = parse_iso((record.wake_retry or {}).get("at"))
    return at if at is not None and at > (now or utcnow()) else None


# -- pinning and idleness (shared by the sweeper and the models API) --------------------------------------


def pinned_by(
    settings: Settings, model: str, record: ModelRecord | None, tags: dict[str, str] | None = None
) -> list[str]:
    """Why a model must never be put to sleep (empty: it may be). Three ways, so operators can pick
    the one they control: the app setting, the model's flag (``POST /api/models/{model}/pin``), or a tag
    on the endpoint (set in Azure ML studio by someone who has no access to the app)."""
    from shared.backends.base import PIN_TAG

    reasons = []
    if model in settings.pinned_models:
        reasons.append("PINNED_MODELS setting")
    if record is not None and record.pinned:
        reasons.append("pin flag")
    if tags and str(tags.get(PIN_TAG, "")).strip().lower() == "true":
        reasons.append(f"endpoint tag {PIN_TAG}=true")
    return reasons


@dataclass(frozen=True)
class Activity:
    """When a model's endpoint was last used, from both sources, and when it was last deployed.

    Gateway activity covers callers of our API; the endpoint's own figure (Azure Monitor, or the local
    scoring server) covers callers who use the endpoint directly. A deployment counts as activity so that a
    model deployed overnight is not deleted before anyone had a chance to call it.
    """

    gateway: datetime | None = None
    endpoint: datetime | None = None
    deployed: datetime | None = None

    @property
    def last_request(self) -> datetime | None:
        seen = [moment for moment in (self.gateway, self.endpoint) if moment is not None]
        return max(seen) if seen else None

    @property
    def idle_since(self) -> datetime | None:
        seen = [moment for moment in (self.last_request, self.deployed) if moment is not None]
        return max(seen) if seen else None

    def idle_at(self, idle_minutes: float) -> datetime | None:
        since = self.idle_since
        return None if since is None else since + timedelta(minutes=idle_minutes)


def activity_for(record: ModelRecord, gateway_last: str | None, endpoint_last: str | None) -> Activity:
    """Combine the sources. A record without ``last_deployed_at`` falls back to ``updated_at``, which is
    never earlier than the deployment, so an unknown deployment time errs towards keeping the endpoint."""
    return Activity(
        gateway=parse_iso(gateway_last),
        endpoint=parse_iso(endpoint_last),
        deployed=parse_iso(record.last_deployed_at) or parse_iso(record.updated_at),
    )


# -- views for the models API -----------------------------------------------------------------------------

# Keys of the reconciler's progress dict that must never leave the app (defensive: none should be stored).
_SECRET_HINTS = ("key", "token", "secret", "password", "authorization")


def _public(progress: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in progress.items() if not any(hint in k.lower() for hint in _SECRET_HINTS)}


def runs_of(ledger: Ledger, model: str) -> list[RunRecord]:
    """The model's runs (few per model: one partition query)."""
    return list(ledger.query(RunRecord, "PartitionKey eq @model", model=model))


def latest_run(ledger: Ledger, model: str, runs: list[RunRecord] | None = None) -> RunRecord | None:
    """The model's most recently created run."""
    runs = runs_of(ledger, model) if runs is None else runs
    return max(runs, key=lambda run: run.created_at) if runs else None


@dataclass(frozen=True)
class EndpointFacts:
    """What the ML platform says about a model's endpoint; ``error`` when it could not be asked."""

    info: EndpointInfo | None = None
    last_request: str | None = None
    error: str = ""


def model_view(
    record: ModelRecord,
    settings: Settings,
    *,
    gateway_last: str | None,
    endpoint: EndpointFacts,
    run: RunRecord | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The JSON an operator sees for one model: state, versions, endpoint, activity, when it will sleep.

    ``idle_at`` is set only when the sweeper may act on the model (it has an endpoint, nothing is being
    deployed, it is not pinned); ``idle_in_minutes`` is negative when the next sweep will put it to sleep.
    """
    now = now or utcnow()
    activity = activity_for(record, gateway_last, endpoint.last_request)
    pins = pinned_by(settings, record.model, record, endpoint.info.tags if endpoint.info else None)
    sweepable = bool(record.endpoint_name) and record.state in ("live", "failed") and not record.deployment
    idle_at = activity.idle_at(settings.endpoint_idle_minutes) if sweepable and not pins else None
    view: dict[str, Any] = {
        "model": record.model,
        "state": record.state,
        "live_version": record.live_version or None,
        "desired_version": record.desired_version or None,
        "live_deployment": record.live_deployment or None,
        "endpoint": record.endpoint_name or None,
        "scoring_uri": record.scoring_uri or None,
        "deployment_in_progress": _public(record.deployment) or None,
        "last_activity": iso(activity.last_request) if activity.last_request else None,
        "last_request_via_gateway": gateway_last or None,
        "last_request_at_endpoint": endpoint.last_request or None,
        "last_deployed_at": record.last_deployed_at or None,
        "idle_after_minutes": settings.endpoint_idle_minutes,
        "idle_at": iso(idle_at) if idle_at else None,
        "idle_in_minutes": round((idle_at - now).total_seconds() / 60, 1) if idle_at else None,
        "pinned": bool(pins),
        "pinned_by": pins,
        "slept_at": record.slept_at or None,
        "sleep_reason": record.sleep_reason or None,
        "wake_retry": record.wake_retry or None,
        "error": record.error or None,
        "latest_run": None,
        "updated_at": record.updated_at,
    }
    if run is not None:
        view["latest_run"] = {"run_id": run.run_id, "state": run.state, "updated_at": run.updated_at}
    if endpoint.error:
        view["endpoint_status_error"] = endpoint.error
    return view


def _backend(settings: Settings, backend: MLBackend | None) -> MLBackend:
    if backend is not None:
        return backend
    from shared.backends import get_backend

    return get_backend(settings)


def _endpoint_facts(
    settings: Settings, backend: MLBackend | None, record: ModelRecord, info: EndpointInfo | None, lookup: bool
) -> EndpointFacts:
    """Ask the platform about the model's endpoint; a platform failure degrades the view, never breaks it."""
    if not record.endpoint_name:
        return EndpointFacts()
    try:
        platform = _backend(settings, backend)
        if lookup:
            info = platform.get_endpoint(record.endpoint_name)
        return EndpointFacts(info=info, last_request=platform.endpoint_last_request(record.endpoint_name))
    except Exception as exc:  # noqa: BLE001 - the ledger's view is still worth showing without the platform's
        log.warning("could not read endpoint %s of model %s: %s", record.endpoint_name, record.model, exc)
        return EndpointFacts(info=info, error=f"{type(exc).__name__}: {exc}")


def _gateway_last(ledger: Ledger, model: str) -> str | None:
    activity = ledger.get(ActivityRecord, "activity", model)
    return activity.last_request_at if activity else None


def get_model_view(
    settings: Settings, ledger: Ledger, model: str, backend: MLBackend | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """One model's view, with what it has not trained on yet (``training``); None when the ledger knows neither
    the model nor any run of it (a model whose data is still on its way to a first version is ``new``)."""
    from shared.runs.pending import training_view

    record = ledger.get(ModelRecord, "models", model)
    runs = runs_of(ledger, model)
    if record is None and not runs:
        return None
    record = record or ModelRecord(model=model)
    view = model_view(
        record,
        settings,
        gateway_last=_gateway_last(ledger, model),
        endpoint=_endpoint_facts(settings, backend, record, None, lookup=True),
        run=latest_run(ledger, model, runs),
        now=now,
    )
    view["training"] = training_view(ledger, settings, model, runs, now)
    return view


def list_model_views(
    settings: Settings, ledger: Ledger, backend: MLBackend | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every model's view, sorted by name; the platform's endpoints are listed once for all of them."""
    records = sorted(ledger.query(ModelRecord, "PartitionKey eq @p", p="models"), key=lambda r: r.model)
    activity = {a.model: a.last_request_at for a in ledger.query(ActivityRecord, "PartitionKey eq @p", p="activity")}
    endpoints: dict[str, EndpointInfo] = {}
    listing_error = ""
    if any(record.endpoint_name for record in records):
        try:
            endpoints = {info.name: info for info in _backend(settings, backend).list_managed_endpoints()}
        except Exception as exc:  # noqa: BLE001 - degrade to the ledger's view
            listing_error = f"{type(exc).__name__}: {exc}"
    views = []
    for record in records:
        if listing_error and record.endpoint_name:
            facts = EndpointFacts(error=listing_error)
        else:
            facts = _endpoint_facts(settings, backend, record, endpoints.get(record.endpoint_name), lookup=False)
        views.append(
            model_view(
                record,
                settings,
                gateway_last=activity.get(record.model),
                endpoint=facts,
                run=latest_run(ledger, record.model),
                now=now,
            )
        )
    return views


def set_pinned(ledger: Ledger, model: str, pinned: bool) -> ModelRecord | None:
    """Set the model's pin flag (idempotent); None when the model is unknown. Pinning does not wake a
    sleeping model: it only stops the sweeper from putting a live one to sleep."""

    def change(current: ModelRecord | None) -> ModelRecord | None:
        if current is None or current.pinned == pinned:
            return None
        current.pinned = pinned
        current.updated_at = iso()
        return current

    return ledger.mutate(ModelRecord, "models", model, change)
