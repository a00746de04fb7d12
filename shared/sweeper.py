"""The idle endpoint sweeper: delete managed endpoints nobody uses, never one somebody does; keep the model.

Why: Azure ML managed online endpoints cannot scale to zero, so an idle GPU deployment bills every hour. The
sweep deletes the *endpoint* only; the registered model and its versions stay, and the model becomes
``sleeping`` with the time and reason recorded. A request through the gateway (or ``POST /api/models/{model}/
wake``) wakes it: the reconciler redeploys its desired version.

Three steps, so each can be tested on its own:
- ``observe`` reads the facts (the platform's managed endpoints, the ledger's model records with their ETags,
  gateway activity, the endpoint's own last request, the reconcile lease);
- ``decide`` is a pure function of one observation, the policy and the clock: keep (with the reason) or sleep;
- ``act`` carries out a sleep: it takes the model's reconcile lease, reads the gateway's activity again and
  decides again (a request since the read keeps the endpoint), saves the model as sleeping with the ETag it
  read (a wake or a new deployment in between wins: the sweep skips), then starts the endpoint's deletion
  without waiting and announces ``MODEL_SLEPT``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared import crashpoints
from shared.ledger import ActivityRecord, ConflictError, Ledger, ModelRecord
from shared.models import activity_for, pinned_by
from shared.names import endpoint_name_for
from shared.timeutil import iso, utcnow

if TYPE_CHECKING:
    from shared.backends.base import EndpointInfo, MLBackend
    from shared.settings import Settings

log = logging.getLogger(__name__)

KEEP = "keep"
SLEEP = "sleep"
SLEEP_POINT = "sleep"  # the crash point around putting a model to sleep (shared/crashpoints.py)
# How long the sweeper holds a model's reconcile lease while it puts the model to sleep (a few calls).
LEASE_SECONDS = 120.0
# Endpoint provisioning states (as Azure words them) in which the endpoint is changing under someone else.
_BUSY_ENDPOINT_STATES = {"creating", "updating", "deleting"}


@dataclass(frozen=True)
class Policy:
    """The settings the decision depends on (``ENDPOINT_IDLE_MINUTES``, ``PINNED_MODELS``)."""

    idle_minutes: float
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(idle_minutes=settings.endpoint_idle_minutes, settings=settings)


@dataclass
class Observation:
    """Everything ``decide`` needs about one managed endpoint, read at one moment."""

    endpoint: EndpointInfo
    model: str = ""
    record: ModelRecord | None = None
    gateway_last_request: str | None = None
    endpoint_last_request: str | None = None
    endpoint_activity_error: str = ""
    lease_held: bool = False


@dataclass(frozen=True)
class Decision:
    action: str  # KEEP or SLEEP
    reason: str
    endpoint: str
    model: str = ""


@dataclass
class Outcome:
    """What happened to one endpoint: ``kept``, ``slept``, ``would_sleep`` (dry run), ``skipped`` (raced or
    leased at the last moment) or ``error`` (the deletion could not be started; the next sweep retries)."""

    endpoint: str
    model: str
    result: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "model": self.model, "result": self.result, "reason": self.reason}


@dataclass
class SweepReport:
    started_at: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def by_result(self, result: str) -> list[str]:
        return [outcome.endpoint for outcome in self.outcomes if outcome.result == result]

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "dry_run": self.dry_run,
            "outcomes": [outcome.as_dict() for outcome in self.outcomes],
        }


def _duration(delta_seconds: float) -> str:
    """Whole minutes, or seconds under a minute (short idle windows, such as the demo's, read "idle 24 s")."""
    return f"{int(delta_seconds // 60)} min" if delta_seconds >= 60 else f"{int(delta_seconds)} s"


def decide(obs: Observation, policy: Policy, now: datetime) -> Decision:
    """Keep or sleep one endpoint. Pure: the same observation, policy and clock give the same decision.

    Every doubt keeps the endpoint: deleting one somebody uses is worse than paying for one more sweep.
    """
    name = obs.endpoint.name

    def keep(reason: str) -> Decision:
        return Decision(KEEP, reason, name, obs.model)

    if not obs.endpoint.managed:
        return keep("not managed by autotune (no autotune-managed=true tag): never touched")
    record = obs.record
    if record is None:
        return keep("no model record owns this endpoint: left for an operator")
    state = (obs.endpoint.state or "").lower()
    if state in _BUSY_ENDPOINT_STATES:
        return keep(f"endpoint is {obs.endpoint.state}")
    if record.state == "sleeping":
        # The model was put to sleep but its endpoint is still there: the deletion did not start (crash, or the
        # platform refused). Finish the job; ``act`` checks the ETag first, so a wake since then wins.
        return Decision(
            SLEEP, f"model is sleeping but endpoint {name} still exists: deleting it again", name, obs.model
        )
    if record.state == "new":
        return keep("model has no deployed version yet")
    pins = pinned_by(policy.settings, obs.model, record, obs.endpoint.tags)
    if pins:
        return keep("pinned by " + " and ".join(pins))
    if record.deployment or record.state == "deploying":
        step = record.deployment.get("step") if record.deployment else ""
        return keep(f"deployment in progress (state {record.state}{f', step {step}' if step else ''})")
    if obs.lease_held:
        return keep("reconcile lease held: the reconciler is working on this model")
    if obs.endpoint_activity_error:
        return keep(f"endpoint activity unknown ({obs.endpoint_activity_error})")
    activity = activity_for(record, obs.gateway_last_request, obs.endpoint_last_request)
    idle_at = activity.idle_at(policy.idle_minutes)
    if idle_at is None or activity.idle_since is None:  # only a record with neither deployment nor update time
        return keep("no activity or deployment time known")
    idle_for = _duration((now - activity.idle_since).total_seconds())
    if now < idle_at:
        if activity.last_request is not None and activity.last_request >= activity.idle_since:
            source = "via the gateway" if activity.last_request == activity.gateway else "at the endpoint"
            return keep(f"active: last request {iso(activity.last_request)} {source} ({idle_for} ago)")
        return keep(f"recently deployed at {iso(activity.idle_since)} ({idle_for} ago)")
    if activity.last_request is not None and activity.last_request >= activity.idle_since:
        detail = f"no requests since {iso(activity.last_request)}"
    else:
        detail = f"no requests since deployment at {iso(activity.idle_since)}"
    return Decision(SLEEP, f"idle {idle_for} ({detail})", name, obs.model)


def observe(settings: Settings, ledger: Ledger, backend: MLBackend) -> list[Observation]:
    """Read the facts for every managed endpoint. Models are matched by the endpoint name they record or
    derive; the ledger is read before the platform is asked about activity, so ETags are the oldest facts."""
    records = list(ledger.query(ModelRecord, "PartitionKey eq @p", p="models"))
    by_endpoint: dict[str, ModelRecord] = {}
    for record in records:
        by_endpoint.setdefault(endpoint_name_for(settings, record.model), record)
    for record in records:  # a recorded endpoint name wins over the derived one
        if record.endpoint_name:
            by_endpoint[record.endpoint_name] = record
    gateway = {a.model: a.last_request_at for a in ledger.query(ActivityRecord, "PartitionKey eq @p", p="activity")}
    observations = []
    for info in backend.list_managed_endpoints():
        observations.append(_observe_one(ledger, backend, info, by_endpoint, gateway))
    return observations


def _observe_one(
    ledger: Ledger,
    backend: MLBackend,
    info: EndpointInfo,
    by_endpoint: dict[str, ModelRecord],
    gateway: dict[str, str],
) -> Observation:
    from shared.backends.base import MODEL_TAG

    record = by_endpoint.get(info.name)
    model = record.model if record else str(info.tags.get(MODEL_TAG, ""))
    obs = Observation(endpoint=info, model=model, record=record, gateway_last_request=gateway.get(model))
    if record is None or not info.managed:
        return obs
    obs.lease_held = ledger.lease_held(f"model:{model}")
    try:
        obs.endpoint_last_request = backend.endpoint_last_request(info.name)
    except Exception as exc:  # noqa: BLE001 - unknown activity means keep, never delete
        obs.endpoint_activity_error = f"{type(exc).__name__}: {exc}"
    return obs


def act(
    decision: Decision,
    obs: Observation,
    settings: Settings,
    ledger: Ledger,
    backend: MLBackend,
    now: datetime | None = None,
) -> Outcome:
    """Carry out one decision. A sleep holds the model's reconcile lease while it changes the model and
    starts the deletion, so no reconciler tick deploys onto an endpoint being deleted.

    ``now`` is the sweep's clock (the decision's), so a re-check judges by the same time the decision did."""
    extra = {"model": decision.model, "endpoint": decision.endpoint}
    if decision.action == KEEP:
        log.info(
            "sweep: keep %s (model %s): %s", decision.endpoint, decision.model or "-", decision.reason, extra=extra
        )
        return Outcome(decision.endpoint, decision.model, "kept", decision.reason)
    if settings.idle_sweep_dry_run:
        log.warning(
            "sweep (dry run): would delete endpoint %s of model %s: %s",
            decision.endpoint,
            decision.model,
            decision.reason,
            extra=extra,
        )
        return Outcome(decision.endpoint, decision.model, "would_sleep", decision.reason)
    assert obs.record is not None  # decide() never sleeps an endpoint without a model record
    lease, owner = f"model:{decision.model}", f"sweeper-{uuid.uuid4().hex[:12]}"
    if not ledger.acquire_lease(lease, owner, LEASE_SECONDS):
        reason = "reconcile lease taken before the sweep could act"
        log.info("sweep: skip %s (model %s): %s", decision.endpoint, decision.model, reason, extra=extra)
        return Outcome(decision.endpoint, decision.model, "skipped", reason)
    try:
        again = decide(_look_again(obs, ledger), Policy.from_settings(settings), now or utcnow())
        if again.action != SLEEP:
            reason = f"active again since the sweep read it: {again.reason}"
            log.info("sweep: skip %s (model %s): %s", decision.endpoint, decision.model, reason, extra=extra)
            return Outcome(decision.endpoint, decision.model, "skipped", reason)
        return _sleep(decision, obs.record, settings, ledger, backend)
    finally:
        ledger.release_lease(lease, owner)


def _look_again(obs: Observation, ledger: Ledger) -> Observation:
    """The observation with the gateway's activity read again, just before acting on it.

    Why: ``observe`` reads activity first and then waits on the endpoints' metric queries (slow on Azure), so a
    request can arrive in between. The model record keeps its first ETag: ``_sleep`` saves with it, so any other
    change since the read still makes the sweep skip.
    """
    latest = ledger.get(ActivityRecord, "activity", obs.model)
    gateway = latest.last_request_at if latest is not None else None
    return replace(obs, gateway_last_request=max(filter(None, (gateway, obs.gateway_last_request)), default=None))


def _sleep(decision: Decision, record: ModelRecord, settings: Settings, ledger: Ledger, backend: MLBackend) -> Outcome:
    from shared.backends.base import BackendError
    from shared.notify import MODEL_SLEPT, publish

    extra = {"model": decision.model, "endpoint": decision.endpoint}
    already_sleeping = record.state == "sleeping"
    try:
        if already_sleeping:
            current = ledger.get(ModelRecord, "models", record.model)
            if current is None or current.etag != record.etag:
                raise ConflictError("changed since read")
        else:
            record.state = "sleeping"
            record.slept_at = record.updated_at = iso()
            record.sleep_reason = decision.reason
            record.endpoint_name = record.scoring_uri = record.live_deployment = ""
            record.deployment = {}
            crashpoints.reached(SLEEP_POINT, crashpoints.BEFORE, record.model)
            ledger.save(record)  # ETag from observe(): a wake or deployment since then raises ConflictError
    except ConflictError:
        reason = "model changed since the sweep read it (woken, redeployed or pinned): left alone"
        log.info("sweep: skip %s (model %s): %s", decision.endpoint, decision.model, reason, extra=extra)
        return Outcome(decision.endpoint, decision.model, "skipped", reason)
    crashpoints.reached(SLEEP_POINT, crashpoints.AFTER, record.model)  # asleep in the ledger, endpoint still there
    try:
        backend.begin_delete_endpoint(decision.endpoint)
    except BackendError as exc:
        log.error(
            "sweep: could not start deleting endpoint %s of model %s (next sweep retries): %s",
            decision.endpoint,
            decision.model,
            exc,
            extra=extra,
        )
        return Outcome(decision.endpoint, decision.model, "error", str(exc))
    log.warning(
        "sweep: put model %s to sleep, deleting endpoint %s: %s",
        decision.model,
        decision.endpoint,
        decision.reason,
        extra=extra,
    )
    if not already_sleeping:
        publish(
            settings,
            MODEL_SLEPT,
            f"models/{decision.model}",
            {
                "model": decision.model,
                "endpoint": decision.endpoint,
                "version": record.live_version,
                "reason": decision.reason,
                "slept_at": record.slept_at,
            },
        )
    return Outcome(decision.endpoint, decision.model, "slept", decision.reason)


def sweep(
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    backend: MLBackend | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """One sweep over every managed endpoint. Each endpoint is decided and acted on independently: one
    failure is logged and the sweep goes on."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    if ledger is None:
        from shared.ledger import get_ledger

        ledger = get_ledger()
    if backend is None:
        from shared.backends import get_backend

        backend = get_backend(settings)
    now = now or utcnow()
    policy = Policy.from_settings(settings)
    report = SweepReport(started_at=iso(now), dry_run=settings.idle_sweep_dry_run)
    for obs in observe(settings, ledger, backend):
        report.outcomes.append(_act_safely(decide(obs, policy, now), obs, settings, ledger, backend, now))
    _log_summary(report.outcomes, report.dry_run)
    return report


def _act_safely(
    decision: Decision, obs: Observation, settings: Settings, ledger: Ledger, backend: MLBackend, now: datetime
) -> Outcome:
    try:
        return act(decision, obs, settings, ledger, backend, now)
    except Exception as exc:  # one endpoint's failure must not stop the sweep of the others (logged)
        log.exception("sweep: failed on endpoint %s (model %s)", decision.endpoint, decision.model)
        return Outcome(decision.endpoint, decision.model, "error", f"{type(exc).__name__}: {exc}")


def _log_summary(outcomes: Iterable[Outcome], dry_run: bool) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    log.info("sweep done%s: %s", " (dry run)" if dry_run else "", counts or "no managed endpoints")
