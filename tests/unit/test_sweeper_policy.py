"""The sweeper's keep-or-sleep policy as a pure function of one observation and an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.backends.base import MANAGED_TAG, MODEL_TAG, PIN_TAG, EndpointInfo
from shared.settings import load_settings
from shared.sweeper import KEEP, SLEEP, Decision, Observation, Policy, decide
from shared.timeutil import iso
from tests import factories

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ENDPOINT = "at-support-bot"


def ago(minutes: float) -> str:
    return iso(NOW - timedelta(minutes=minutes))


def policy(**env: str) -> Policy:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "ENDPOINT_IDLE_MINUTES": "60"}
    return Policy.from_settings(load_settings({**base, **env}))


def observation(
    *,
    tags: dict[str, str] | None = None,
    endpoint_state: str = "Succeeded",
    gateway: str | None = None,
    endpoint_seen: str | None = None,
    deployed: str | None = None,
    with_record: bool = True,
    **record_fields,
) -> Observation:
    deployed_at = deployed if deployed is not None else ago(600)
    fields = {"updated_at": ago(600), **record_fields}
    record = factories.build_live_model(endpoint=ENDPOINT, **fields) if with_record else None
    if record is not None:
        record.last_deployed_at = fields.get("last_deployed_at", deployed_at)
    info = EndpointInfo(
        name=ENDPOINT,
        state=endpoint_state,
        tags={MANAGED_TAG: "true", MODEL_TAG: "support-bot"} if tags is None else tags,
        deployments=("v3",),
        traffic={"v3": 100},
    )
    return Observation(
        endpoint=info,
        model="support-bot",
        record=record,
        gateway_last_request=gateway,
        endpoint_last_request=endpoint_seen,
    )


def sleeps(decision: Decision) -> bool:
    return decision.action == SLEEP


def test_idle_endpoint_sleeps_with_a_reason_naming_the_idle_time_and_last_request():
    decision = decide(observation(gateway=ago(73), endpoint_seen=ago(80)), policy(), NOW)
    assert decision.action == SLEEP
    assert decision.reason == f"idle 73 min (no requests since {ago(73)})"
    assert decision.model == "support-bot" and decision.endpoint == ENDPOINT


def test_never_called_endpoint_sleeps_once_its_deployment_is_old_enough():
    decision = decide(observation(deployed=ago(61)), policy(), NOW)
    assert sleeps(decision)
    assert f"no requests since deployment at {ago(61)}" in decision.reason


def test_recently_active_via_the_gateway_is_kept():
    decision = decide(observation(gateway=ago(5), endpoint_seen=ago(300)), policy(), NOW)
    assert decision.action == KEEP
    assert "via the gateway" in decision.reason and "5 min ago" in decision.reason


def test_recently_active_at_the_endpoint_itself_is_kept():
    """Callers who use the endpoint directly (not through our gateway) keep it alive too."""
    decision = decide(observation(gateway=ago(300), endpoint_seen=ago(2)), policy(), NOW)
    assert decision.action == KEEP
    assert "at the endpoint" in decision.reason


def test_recently_deployed_is_kept_even_with_old_requests():
    decision = decide(observation(gateway=ago(500), deployed=ago(10)), policy(), NOW)
    assert decision.action == KEEP
    assert decision.reason.startswith("recently deployed")


def test_unknown_deployment_time_falls_back_to_the_last_update():
    kept = decide(observation(deployed="", updated_at=ago(30)), policy(), NOW)
    slept = decide(observation(deployed="", updated_at=ago(90)), policy(), NOW)
    assert (kept.action, slept.action) == (KEEP, SLEEP)


def test_the_idle_threshold_is_the_setting_and_inclusive():
    assert sleeps(decide(observation(gateway=ago(60)), policy(), NOW))
    assert not sleeps(decide(observation(gateway=ago(59.9)), policy(), NOW))
    assert sleeps(decide(observation(gateway=ago(6)), policy(ENDPOINT_IDLE_MINUTES="5"), NOW))
    assert not sleeps(decide(observation(gateway=ago(6)), policy(ENDPOINT_IDLE_MINUTES="1440"), NOW))


def test_the_clock_decides_not_the_wall_time():
    obs = observation(gateway="2026-11-28T11:30:00.000Z")
    assert decide(obs, policy(), NOW).action == KEEP
    assert decide(obs, policy(), NOW + timedelta(minutes=30)).action == SLEEP


@pytest.mark.parametrize(
    "tags",
    [{}, {MANAGED_TAG: "false"}, {MODEL_TAG: "support-bot"}, {"owner": "someone-else"}],
    ids=["no-tags", "managed-false", "model-tag-only", "foreign"],
)
def test_unmanaged_endpoint_is_never_touched_however_idle(tags):
    decision = decide(observation(tags=tags, gateway=ago(10_000), deployed=ago(10_000)), policy(), NOW)
    assert decision.action == KEEP
    assert "not managed" in decision.reason


def test_pinned_by_setting():
    decision = decide(observation(gateway=ago(500)), policy(PINNED_MODELS="other, support-bot"), NOW)
    assert decision.action == KEEP
    assert decision.reason == "pinned by PINNED_MODELS setting"


def test_pinned_by_flag():
    decision = decide(observation(gateway=ago(500), pinned=True), policy(), NOW)
    assert decision.action == KEEP
    assert decision.reason == "pinned by pin flag"


def test_pinned_by_endpoint_tag():
    tags = {MANAGED_TAG: "true", PIN_TAG: "True"}
    decision = decide(observation(tags=tags, gateway=ago(500)), policy(), NOW)
    assert decision.action == KEEP
    assert PIN_TAG in decision.reason


def test_deployment_in_progress_is_kept():
    progress = {"version": "4", "name": "v4", "step": "creating", "started_at": ago(500)}
    decision = decide(observation(gateway=ago(500), deployment=progress), policy(), NOW)
    assert decision.action == KEEP
    assert "deployment in progress" in decision.reason and "creating" in decision.reason


def test_deploying_state_is_kept_even_without_progress_yet():
    """A woken model is ``deploying`` with empty progress until the reconciler's first tick."""
    decision = decide(observation(gateway=ago(500), state="deploying"), policy(), NOW)
    assert decision.action == KEEP


def test_reconcile_lease_held_is_kept():
    obs = observation(gateway=ago(500))
    obs.lease_held = True
    decision = decide(obs, policy(), NOW)
    assert decision.action == KEEP
    assert "lease" in decision.reason


def test_unknown_endpoint_activity_keeps_the_endpoint():
    """If Azure Monitor (or the local server) cannot be asked, direct callers may exist: keep."""
    obs = observation(gateway=ago(500))
    obs.endpoint_activity_error = "BackendError: metrics unavailable"
    decision = decide(obs, policy(), NOW)
    assert decision.action == KEEP
    assert "metrics unavailable" in decision.reason


def test_endpoint_without_a_model_record_is_left_to_an_operator():
    decision = decide(observation(with_record=False, gateway=ago(500)), policy(), NOW)
    assert decision.action == KEEP
    assert "no model record" in decision.reason


@pytest.mark.parametrize("state", ["Creating", "Updating", "Deleting"])
def test_endpoint_changing_state_is_kept(state):
    assert decide(observation(endpoint_state=state, gateway=ago(500)), policy(), NOW).action == KEEP


def test_new_model_without_a_version_is_kept():
    assert decide(observation(state="new", live_version="", gateway=ago(500)), policy(), NOW).action == KEEP


def test_failed_model_with_an_idle_endpoint_sleeps():
    """A failed rollout keeps the old deployment serving; if nobody calls it, it still costs money."""
    assert sleeps(decide(observation(state="failed", error="quota", gateway=ago(500)), policy(), NOW))


def test_sleeping_model_whose_endpoint_survived_is_deleted_again():
    obs = observation(state="sleeping", endpoint_name="", gateway=ago(1))
    decision = decide(obs, policy(), NOW)
    assert decision.action == SLEEP
    assert "still exists" in decision.reason


def test_a_record_with_no_time_at_all_is_kept():
    decision = decide(observation(deployed="", updated_at="", gateway=None), policy(), NOW)
    assert decision.action == KEEP and "no activity or deployment time" in decision.reason
