"""The model view the API shows: last activity from both sources, when the model will be considered idle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.backends.base import MANAGED_TAG, PIN_TAG, EndpointInfo
from shared.ledger import ModelRecord, RunRecord
from shared.models import EndpointFacts, model_view
from shared.settings import load_settings
from shared.timeutil import iso
from tests import factories

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "ENDPOINT_IDLE_MINUTES": "60"})


def ago(minutes: float) -> str:
    return iso(NOW - timedelta(minutes=minutes))


def live(**fields) -> ModelRecord:
    return factories.build_live_model(
        version="2", deployed_at=ago(200), **{"scoring_uri": "http://127.0.0.1:5001/score", **fields}
    )


def test_last_activity_is_the_latest_of_gateway_and_endpoint_and_sets_idle_at():
    view = model_view(
        live(),
        SETTINGS,
        gateway_last=ago(30),
        endpoint=EndpointFacts(last_request=ago(10)),
        run=None,
        now=NOW,
    )
    assert view["last_activity"] == ago(10)
    assert view["last_request_via_gateway"] == ago(30)
    assert view["last_request_at_endpoint"] == ago(10)
    assert view["idle_at"] == iso(NOW + timedelta(minutes=50))
    assert view["idle_in_minutes"] == 50.0
    assert view["state"] == "live" and view["live_version"] == "2" and view["endpoint"] == "at-support-bot"


def test_recent_deployment_pushes_idle_at_and_overdue_is_negative():
    fresh = model_view(
        live(last_deployed_at=ago(5)), SETTINGS, gateway_last=ago(100), endpoint=EndpointFacts(), run=None, now=NOW
    )
    assert fresh["idle_at"] == iso(NOW + timedelta(minutes=55))
    overdue = model_view(live(), SETTINGS, gateway_last=ago(90), endpoint=EndpointFacts(), run=None, now=NOW)
    assert overdue["idle_in_minutes"] == -30.0


def test_sleeping_model_shows_its_version_reason_and_no_idle_time():
    record = live(
        state="sleeping",
        endpoint_name="",
        scoring_uri="",
        live_deployment="",
        slept_at=ago(3),
        sleep_reason="idle 73 min (no requests since ...)",
    )
    run = RunRecord(model="support-bot", run_id="support-bot-abc", state="live")
    view = model_view(record, SETTINGS, gateway_last=ago(76), endpoint=EndpointFacts(), run=run, now=NOW)
    assert view["state"] == "sleeping"
    assert view["live_version"] == "2" and view["desired_version"] == "2"
    assert view["endpoint"] is None and view["idle_at"] is None
    assert view["slept_at"] == ago(3) and view["sleep_reason"].startswith("idle 73 min")
    assert view["latest_run"]["run_id"] == "support-bot-abc"


def test_pinned_models_have_no_idle_time_and_say_who_pinned_them():
    info = EndpointInfo(name="at-support-bot", tags={MANAGED_TAG: "true", PIN_TAG: "true"})
    view = model_view(
        live(pinned=True), SETTINGS, gateway_last=None, endpoint=EndpointFacts(info=info), run=None, now=NOW
    )
    assert view["pinned"] is True
    assert view["pinned_by"] == ["pin flag", f"endpoint tag {PIN_TAG}=true"]
    assert view["idle_at"] is None


def test_deploying_model_has_no_idle_time_and_shows_progress_without_secrets():
    progress = {"version": "3", "step": "smoke_test", "primary_key": "s3cr3t", "auth_token": "t0k3n"}
    view = model_view(
        live(state="deploying", deployment=progress),
        SETTINGS,
        gateway_last=None,
        endpoint=EndpointFacts(),
        run=None,
        now=NOW,
    )
    assert view["idle_at"] is None
    assert view["deployment_in_progress"] == {"version": "3", "step": "smoke_test"}
    assert "s3cr3t" not in json.dumps(view) and "t0k3n" not in json.dumps(view)


def test_platform_error_is_shown_not_raised():
    view = model_view(
        live(), SETTINGS, gateway_last=None, endpoint=EndpointFacts(error="BackendError: down"), run=None, now=NOW
    )
    assert view["endpoint_status_error"] == "BackendError: down"
    assert view["last_activity"] is None
