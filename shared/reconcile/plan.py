"""What the reconciler does next for a model, decided from its record alone (pure: no I/O), and the names of the
steps of a blue/green rollout as ``ModelRecord.deployment["step"]`` stores them. ``steps`` runs them."""

from __future__ import annotations

from shared.ledger import ModelRecord

# Step names, in order, as stored in ModelRecord.deployment["step"].
ENDPOINT, CREATE, PROVISIONING, SMOKE, EVALUATE, TRAFFIC, CLEANUP = (
    "endpoint",
    "create",
    "provisioning",
    "smoke",
    "evaluate",
    "traffic",
    "cleanup",
)
STEPS = (ENDPOINT, CREATE, PROVISIONING, SMOKE, EVALUATE, TRAFFIC, CLEANUP)
# Steps that wait on scoring requests (a request's full timeout, or many): the job-event handler, which must answer
# Event Grid within seconds, leaves them to the timer.
SCORING_STEPS = frozenset({SMOKE, EVALUATE})
# Decisions that are not steps of an in-flight deployment.
IDLE, SLEEPING, START, ABANDON = "idle", "sleeping", "start", "abandon"
ROLLBACK = "rollback"  # not a step: its crash points are named "rollback:{step}" (the step that failed)

QUOTA_HINT = (
    "Azure ML needs 20% spare quota above the cores a deployment uses to create or upgrade it: request more "
    "quota for the VM family, or use a smaller INSTANCE_TYPE or INSTANCE_COUNT."
)


def next_action(model: ModelRecord) -> str:
    """What the reconciler should do next for this model. Pure: a function of the record alone."""
    if model.state == "sleeping":
        return SLEEPING  # waits for a wake (request_wake sets ``deploying`` and ``deployment = {"wake": ...}``)
    progress = model.deployment or {}
    step = progress.get("step")
    if step in STEPS:
        if progress.get("version") != model.desired_version and step != CLEANUP:
            return ABANDON  # a newer version is desired: stop rolling out this one (traffic never moved to it)
        return step
    if not model.desired_version or model.state == "failed":
        return IDLE  # nothing to deploy, or the last rollout failed with nothing serving: wait for a new run
    if model.state == "live" and model.live_version == model.desired_version:
        return IDLE
    return START


def deployment_reason(error: str) -> str:
    """The platform's deployment error, plus what to do when it is about quota."""
    text = error.strip() or "the deployment failed without an error message"
    if "quota" in text.lower() and "20%" not in text:
        text = f"{text} {QUOTA_HINT}"
    return text


__all__ = [
    "ABANDON",
    "CLEANUP",
    "CREATE",
    "ENDPOINT",
    "EVALUATE",
    "IDLE",
    "PROVISIONING",
    "QUOTA_HINT",
    "ROLLBACK",
    "SCORING_STEPS",
    "SLEEPING",
    "SMOKE",
    "START",
    "STEPS",
    "TRAFFIC",
    "deployment_reason",
    "next_action",
]
