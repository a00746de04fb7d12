"""Blue/green deployment of a model's desired version, one short step at a time.

Why steps recorded in the ledger: an Azure ML deployment takes 10-30 minutes and a function must return in
seconds, so each step *starts* something or *reads* something, records where it got to in
``ModelRecord.deployment`` (ETag-checked), and returns. The next tick (or an event) resumes from the record,
so a crash between any two steps repeats at most one idempotent step. Steps:

``endpoint`` (ensure it, wait until it is ready) -> ``create`` (begin deployment ``v{version}``) ->
``provisioning`` (read its state) -> ``smoke`` (one test conversation, pinned to the new deployment) ->
``evaluate`` (champion vs challenger on held-out conversations, over as many ticks as it takes; the promotion
gate may hold the version: ``evaluate.py``) -> ``traffic`` (canary share first when ``CANARY_PERCENT`` > 0, then
100%) -> ``cleanup`` (delete the old deployment; the model is live). A failure before ``cleanup`` rolls back:
the old deployment keeps serving and keeps its traffic, the new one is deleted, and the run and the model say why.

Which step comes next is decided, purely, in ``plan``; ``step_boundary`` and ``_save`` stay here, where tests
hook them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta

from shared import crashpoints
from shared.backends.base import MANAGED_TAG, MODEL_TAG, BackendError, DeploymentPhase
from shared.ledger import ConflictError, ModelRecord, RunRecord
from shared.names import deployment_name, endpoint_name_for
from shared.notify import MODEL_DEPLOYED, publish
from shared.reconcile.handback import SERVING, take_traffic_back
from shared.reconcile.merge import save_merged, step_reading
from shared.reconcile.plan import (
    ABANDON,
    CLEANUP,
    CREATE,
    ENDPOINT,
    EVALUATE,
    PROVISIONING,
    ROLLBACK,
    SMOKE,
    START,
    TRAFFIC,
    deployment_reason,
)
from shared.reconcile.smoke import FALLBACK_CONVERSATION, first_conversation, output_text, smoke_payload
from shared.reconcile.wake import CAPACITY_CODES, record_failed_wake
from shared.runs.context import RunContext, advance_run
from shared.runs.failure import fail_run, user_reason
from shared.runs.outcome import supersede
from shared.runs.promotion import supersede_waiting
from shared.runs.submit import run_split_blob
from shared.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

DEPLOY_TIMEOUT = timedelta(minutes=120)  # Azure ML's own deployment timeout is well below this
NOT_FOUND_GRACE = timedelta(minutes=2)  # a just-begun deployment may not be listed yet
MAX_SMOKE_ATTEMPTS = 3
_ENDPOINT_BUSY = {"creating", "updating"}  # provisioning states (lower case) in which an endpoint is changing
SMOKE_TIMEOUT_SECONDS = 90.0  # the notebook's request_timeout_ms
# When the current reconcile tick should end (``time.monotonic()``; 0: no tick). ``reconcile_model`` sets it; a
# step that can stop at any point (the evaluation) uses what is left of the tick instead of a budget of its own.
TICK_DEADLINE: ContextVar[float] = ContextVar("tick_deadline", default=0.0)


def step_boundary(model: str, step: str) -> None:
    """Called after each step is recorded: a crash point (``shared.crashpoints``; no-op in production)."""
    crashpoints.reached(step, crashpoints.AFTER, model)


def _age(stamp: str | None) -> timedelta:
    moment = parse_iso(stamp)
    return utcnow() - moment if moment else timedelta(0)


def _save(ctx: RunContext, model: ModelRecord, step: str | None = None) -> ModelRecord:
    model.updated_at = iso()
    if model.deployment:
        model.deployment["updated_at"] = model.updated_at
    if step:
        crashpoints.reached(step, crashpoints.BEFORE, model.model)  # the platform acted; the ledger not yet
    try:
        saved = ctx.ledger.save(model)
    except ConflictError:  # merged over an unrelated change; a changed rollout still ends this tick
        saved = save_merged(ctx.ledger, model)
    if step:
        step_boundary(model.model, step)
    return saved


def _run(ctx: RunContext, model: ModelRecord, run_id: str) -> RunRecord | None:
    return ctx.ledger.get(RunRecord, model.model, run_id) if run_id else None


# ------------------------------------------------------------------------------------------------ decisions
def start(ctx: RunContext, model: ModelRecord) -> bool:
    version = model.desired_version
    name = deployment_name(version)
    endpoint = endpoint_name_for(ctx.settings, model.model)
    previous = ""
    if model.live_deployment and model.live_deployment != name and model.endpoint_name == endpoint:
        previous = model.live_deployment
    wake = str((model.deployment or {}).get("wake") or "")  # set by request_wake: a failure leaves it asleep
    model.deployment = {
        "step": ENDPOINT,
        "version": version,
        "run_id": model.desired_run_id,
        "name": name,
        "endpoint": endpoint,
        "previous": previous,
        "started_at": iso(),
        **({"wake": wake} if wake else {}),
    }
    if model.state != "live":
        model.state = "deploying"  # nothing serves yet; "live" stays while the old version serves
    log.info("model %s: rolling out version %s as %s/%s", model.model, version, endpoint, name)
    _save(ctx, model, START)
    return True


def abandon(ctx: RunContext, model: ModelRecord) -> bool:
    """A newer version became desired mid-rollout: undo this one (old traffic back, new deployment deleted)."""
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    if take_traffic_back(ctx, progress, clear=False) == SERVING:
        # It is the only deployment serving (the switch happened, its record did not): never abandon it. Its
        # rollout finishes (cleanup, live) and the newer version follows.
        progress["step"], progress["traffic"] = CLEANUP, {name: 100}
        log.info(
            "model %s: %s already serves; finishing it before version %s", model.model, name, model.desired_version
        )
        _save(ctx, model, ABANDON)
        return True
    if name != model.live_deployment:
        _delete_quietly(ctx, endpoint, name)
    run = _run(ctx, model, progress.get("run_id", ""))
    if run is not None and run.state in ("registered", "deploying"):
        supersede(ctx, run, by=model.desired_run_id)
    log.info("model %s: abandoning %s for newer version %s", model.model, name, model.desired_version)
    model.deployment = {"wake": progress["wake"]} if progress.get("wake") else {}
    _save(ctx, model, ABANDON)
    return True


# ------------------------------------------------------------------------------------------------ steps
def ensure_endpoint(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint = progress["endpoint"]
    info = ctx.backend.get_endpoint(endpoint)
    if info is None or (info.state or "").lower() != "deleting":
        info = ctx.backend.begin_endpoint(endpoint, {MANAGED_TAG: "true", MODEL_TAG: model.model})
    state = (info.state or "").lower()
    if state == "succeeded":
        progress["step"] = CREATE
        progress["scoring_uri"] = info.scoring_uri
        _save(ctx, model, ENDPOINT)
        return True
    if state in ("failed", "canceled"):
        # Canceled: Azure stopped the create (or update); the endpoint will not become ready on its own.
        return rollback(ctx, model, f"endpoint {endpoint} provisioning ended {state}", ENDPOINT)
    progress["waiting_for"] = f"endpoint {endpoint} ({info.state or 'unknown'})"
    return False


def create_deployment(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint, name, version = progress["endpoint"], progress["name"], progress["version"]
    registered = ctx.settings.registered_model_name(model.model)
    model_version = ctx.backend.get_model(registered, version)
    if model_version is None:
        return rollback(ctx, model, f"registered model {registered} version {version} was not found", CREATE)
    state = ctx.backend.get_deployment(endpoint, name)
    if state.phase == DeploymentPhase.NOT_FOUND:
        ctx.backend.begin_deployment(
            endpoint, name, model_version, ctx.settings.instance_type, ctx.settings.instance_count
        )
    run = _run(ctx, model, progress.get("run_id", ""))
    if run is not None:
        advance_run(ctx.ledger, run, "deploying")
    progress["step"] = PROVISIONING
    progress["begun_at"] = iso()
    _save(ctx, model, CREATE)
    return True


def watch_provisioning(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    state = ctx.backend.get_deployment(endpoint, name)
    if state.phase == DeploymentPhase.SUCCEEDED:
        progress["step"] = SMOKE
        _save(ctx, model, PROVISIONING)
        return True
    if state.phase == DeploymentPhase.FAILED:
        return rollback(ctx, model, deployment_reason(state.error), PROVISIONING, capacity=state.code in CAPACITY_CODES)
    if state.phase == DeploymentPhase.DELETING:
        return rollback(ctx, model, f"deployment {name} is being deleted by someone else", PROVISIONING)
    if state.phase == DeploymentPhase.NOT_FOUND:
        if _age(progress.get("begun_at")) < NOT_FOUND_GRACE:
            return False
        progress["step"] = CREATE  # the platform lost (or never got) the request: begin it again
        _save(ctx, model, PROVISIONING)
        return True
    if _age(progress.get("begun_at")) > DEPLOY_TIMEOUT:
        minutes = int(DEPLOY_TIMEOUT.total_seconds() // 60)
        return rollback(ctx, model, f"deployment {name} did not finish within {minutes} minutes", PROVISIONING)
    return False


def smoke_test(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    conversation = _test_conversation(ctx, model, progress.get("run_id", ""))
    try:
        target = ctx.backend.scoring_target(endpoint, name)
        answer = ctx.backend.invoke(target, smoke_payload(conversation), timeout=SMOKE_TIMEOUT_SECONDS)
        text = output_text(answer)
        problem = "" if text.strip() else f"empty output (answer: {str(answer)[:200]!r})"
    except Exception as exc:  # noqa: BLE001 - any failure to answer is a failed smoke test
        problem = user_reason(exc)
        text = ""
    if problem:
        attempts = int(progress.get("smoke_attempts", 0)) + 1
        progress["smoke_attempts"] = attempts
        progress["smoke_error"] = problem
        if attempts >= MAX_SMOKE_ATTEMPTS:
            return rollback(ctx, model, f"smoke test failed {attempts} times: {problem}", SMOKE)
        log.warning("model %s: smoke test of %s failed (attempt %d): %s", model.model, name, attempts, problem)
        _save(ctx, model)
        return False
    progress["smoke"] = {"ok": True, "at": iso(), "messages": len(conversation), "output_chars": len(text)}
    progress["step"] = EVALUATE
    _save(ctx, model, SMOKE)
    return True


def _test_conversation(ctx: RunContext, model: ModelRecord, run_id: str) -> list[dict[str, str]]:
    run = _run(ctx, model, run_id)
    if run is not None:
        for split in ("test", "train"):
            found = first_conversation(ctx.settings, run_split_blob(run, split))
            if found:
                return found
    log.warning("model %s: no test conversation for run %s; using a generic one", model.model, run_id)
    return list(FALLBACK_CONVERSATION)


def evaluate(ctx: RunContext, model: ModelRecord) -> bool:
    from shared.reconcile.evaluate import evaluate as evaluate_step  # its own module; imports this one

    return evaluate_step(ctx, model)


def move_traffic(ctx: RunContext, model: ModelRecord) -> bool:
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    previous = progress.get("previous", "")
    if previous:
        info = ctx.backend.get_endpoint(endpoint)
        if info is not None and info.deployments and previous not in info.deployments:
            previous = progress["previous"] = ""  # gone already: nothing to split with or roll back to
    canary = ctx.settings.canary_percent
    if canary and previous and not progress.get("canary_at"):
        traffic = {name: canary, previous: 100 - canary}
        ctx.backend.set_traffic(endpoint, traffic)
        progress["canary_at"] = iso()
        progress["traffic"] = traffic
        log.info("model %s: canary %d%% to %s", model.model, canary, name)
        _save(ctx, model, TRAFFIC)
        return False  # 100% on the next tick
    if progress.get("canary_at"):
        state = ctx.backend.get_deployment(endpoint, name)
        if state.phase != DeploymentPhase.SUCCEEDED:
            return rollback(ctx, model, f"deployment {name} became {state.phase} during the canary", TRAFFIC)
    traffic = {name: 100}
    if previous:
        traffic[previous] = 0
    ctx.backend.set_traffic(endpoint, traffic)
    progress["traffic"] = traffic
    progress["step"] = CLEANUP
    _save(ctx, model, TRAFFIC)
    return True


def cleanup(ctx: RunContext, model: ModelRecord) -> bool:
    """Delete every other deployment on the endpoint (the previous one, leftovers of failed rollouts); go live."""
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    info = ctx.backend.get_endpoint(endpoint)
    if info is not None and (info.state or "").lower() in _ENDPOINT_BUSY:
        return False  # the traffic update is still being applied; a deployment with traffic cannot be deleted
    if info is not None and info.traffic and info.traffic.get(name) != 100:
        ctx.backend.set_traffic(endpoint, dict(progress.get("traffic") or {name: 100}))  # lost: apply it again
        return False
    others = set(info.deployments if info is not None else ()) | {progress.get("previous", "")}
    for other in sorted(others - {name, ""}):
        try:
            _delete_quietly(ctx, endpoint, other, strict=True)
        except BackendError as exc:
            if exc.retryable:
                log.warning("model %s: deleting %s will be retried: %s", model.model, other, exc)
                return False
            log.warning("model %s: could not delete %s (it serves no traffic): %s", model.model, other, exc)
    run = _run(ctx, model, progress.get("run_id", ""))
    if run is not None:
        run = advance_run(ctx.ledger, run, "live")
        supersede_waiting(ctx, run)
    if model.live_run_id and model.live_run_id != progress.get("run_id"):
        old = _run(ctx, model, model.live_run_id)
        if old is not None:
            supersede(ctx, old, by=progress.get("run_id", ""))
    model.state = "live"
    model.live_version = progress["version"]
    model.live_run_id = progress.get("run_id", "")
    model.live_deployment = name
    model.endpoint_name = endpoint
    model.scoring_uri = (info.scoring_uri if info is not None else "") or progress.get("scoring_uri", "")
    model.last_deployed_at = iso()
    model.error = ""
    model.wake_retry = {}
    model.deployment = {}
    _save(ctx, model, CLEANUP)
    log.info("model %s: version %s is live on %s/%s", model.model, model.live_version, endpoint, name)
    publish(
        ctx.settings,
        MODEL_DEPLOYED,
        f"models/{model.model}",
        {
            "model": model.model,
            "version": model.live_version,
            "run_id": model.live_run_id,
            "endpoint": endpoint,
            "deployment": name,
        },
    )
    return True


def rollback(ctx: RunContext, model: ModelRecord, reason: str, step: str, *, capacity: bool = False) -> bool:
    """The rollout failed: the old deployment keeps (or gets back) all traffic; the run and the model say why.
    A failed wake leaves the model asleep and wakeable (``wake.py``); ``capacity`` marks quota/capacity failures."""
    progress = model.deployment
    endpoint, name = progress["endpoint"], progress["name"]
    take_traffic_back(ctx, progress, clear=True)  # from the endpoint's actual traffic, whatever was recorded
    run = _run(ctx, model, progress.get("run_id", ""))
    if run is not None:
        fail_run(ctx, run, f"deployment failed: {reason}", failed_step=f"deploy:{step}")
    serving = model.state == "live" and bool(model.live_deployment)
    model.state = "live" if serving else "failed"
    model.error = f"version {progress['version']} ({name}) failed at step {step}: {reason}"
    if progress.get("wake") and not serving:
        record_failed_wake(ctx.settings, model, f"waking {model.error}", capacity=capacity)
    # Desired falls back to what serves, so the failed version is not retried every tick; a new run (or a
    # wake, for a sleeping model) starts the next rollout.
    model.desired_version, model.desired_run_id = model.live_version, model.live_run_id
    model.deployment = {}
    log.warning("model %s: %s", model.model, model.error)
    _save(ctx, model, f"{ROLLBACK}:{step}")
    if name != model.live_deployment:
        _delete_quietly(ctx, endpoint, name)
    return False


def _delete_quietly(ctx: RunContext, endpoint: str, deployment: str, *, strict: bool = False) -> None:
    """Start deleting a deployment unless it is gone or going. A failure only costs money (the next rollout's
    cleanup deletes leftovers), so it is logged, or raised to a ``strict`` caller that decides."""
    try:
        state = ctx.backend.get_deployment(endpoint, deployment)
        if state.phase in (DeploymentPhase.NOT_FOUND, DeploymentPhase.DELETING):
            return
        ctx.backend.begin_delete_deployment(endpoint, deployment)
        log.info("deleting deployment %s/%s", endpoint, deployment)
    except BackendError as exc:
        if strict:
            raise
        log.warning("could not delete deployment %s/%s: %s", endpoint, deployment, exc)


HANDLERS: dict[str, Callable[[RunContext, ModelRecord], bool]] = {
    START: start,
    ABANDON: abandon,
    ENDPOINT: ensure_endpoint,
    CREATE: create_deployment,
    PROVISIONING: watch_provisioning,
    SMOKE: smoke_test,
    EVALUATE: evaluate,
    TRAFFIC: move_traffic,
    CLEANUP: cleanup,
}


def run_step(ctx: RunContext, model: ModelRecord, action: str) -> bool:
    """Run one step; True when the next one can follow in the same tick. Platform errors: a retryable one
    waits for the next tick, any other one (before traffic moved for good) rolls the rollout back."""
    with step_reading(model):  # the base a save merges from after an unrelated ETag conflict (merge.py)
        try:
            return HANDLERS[action](ctx, model)
        except BackendError as exc:
            if exc.retryable or action in (START, ABANDON, CLEANUP):
                log.warning("model %s: step %s will be retried: %s", model.model, action, exc)
                return False
            capacity = exc.code in CAPACITY_CODES
            return rollback(ctx, model, deployment_reason(user_reason(exc)), action, capacity=capacity)


__all__ = [
    "HANDLERS",
    "TICK_DEADLINE",
    "cleanup",
    "create_deployment",
    "ensure_endpoint",
    "evaluate",
    "move_traffic",
    "rollback",
    "run_step",
    "smoke_test",
    "step_boundary",
    "watch_provisioning",
]
