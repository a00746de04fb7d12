"""The models API as the Functions host calls it: real ``func.HttpRequest`` objects, a real ledger on Azurite."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest

from functions import models as routes
from shared.ledger import ActivityRecord, Ledger, ModelRecord, RunRecord
from shared.notify import MODEL_WOKE
from shared.timeutil import iso


def call(handler, method: str, url: str, **route_params: str) -> tuple[int, dict]:
    req = func.HttpRequest(method=method, url=url, body=b"", route_params=route_params, headers={})
    response = handler.build().get_user_function()(req)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    ledger.create(
        ModelRecord(
            model="support-bot",
            state="sleeping",
            desired_version="2",
            desired_run_id="support-bot-bbb",
            live_version="2",
            live_run_id="support-bot-bbb",
            last_deployed_at="2026-11-27T08:00:00.000Z",
            slept_at="2026-11-27T10:13:00.000Z",
            sleep_reason="idle 73 min (no requests since 2026-11-27T09:00:00.000Z)",
        )
    )
    ledger.create(ModelRecord(model="faq-bot", state="new"))
    ledger.upsert(ActivityRecord(model="support-bot", last_request_at="2026-11-27T09:00:00.000Z"))
    for run_id, created in (
        ("support-bot-aaa", "2026-11-20T08:00:00.000Z"),
        ("support-bot-bbb", "2026-11-27T07:00:00.000Z"),
    ):
        ledger.create(RunRecord(model="support-bot", run_id=run_id, state="live", created_at=created))
    return ledger


def test_list_shows_every_model_with_state_versions_and_activity(seeded: Ledger):
    status, body = call(routes.models_list, "GET", "/api/models")
    assert status == 200
    views = {view["model"]: view for view in body["models"]}
    assert list(views) == ["faq-bot", "support-bot"]
    bot = views["support-bot"]
    assert bot["state"] == "sleeping"
    assert (bot["live_version"], bot["desired_version"]) == ("2", "2")
    assert bot["endpoint"] is None and bot["idle_at"] is None
    assert bot["last_activity"] == "2026-11-27T09:00:00.000Z"
    assert bot["sleep_reason"].startswith("idle 73 min")
    assert bot["latest_run"]["run_id"] == "support-bot-bbb"
    assert views["faq-bot"]["state"] == "new" and views["faq-bot"]["latest_run"] is None


def test_get_one_model_and_unknown_and_invalid_names(seeded: Ledger):
    status, body = call(routes.models_get, "GET", "/api/models/support-bot", model="support-bot")
    assert status == 200 and body["model"] == "support-bot" and body["slept_at"] == "2026-11-27T10:13:00.000Z"
    status, body = call(routes.models_get, "GET", "/api/models/nobody", model="nobody")
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = call(routes.models_get, "GET", "/api/models/Bad_Name", model="Bad_Name")
    assert status == 400 and "Bad_Name" in body["error"]["message"]


def test_wake_answers_202_then_200_and_announces_once(seeded: Ledger, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="shared.notify")
    status, body = call(routes.models_wake, "POST", "/api/models/support-bot/wake", model="support-bot")
    assert status == 202
    assert body["state"] == "deploying" and body["desired_version"] == "2"
    assert "waking" in body["message"]
    record = seeded.get(ModelRecord, "models", "support-bot")
    assert record.state == "deploying" and record.desired_version == "2" and record.live_version == "2"
    assert "woken by POST /api/models/{model}/wake" in record.sleep_reason

    status, body = call(routes.models_wake, "POST", "/api/models/support-bot/wake", model="support-bot")
    assert status == 200 and "not sleeping" in body["message"]
    woke_events = [r for r in caplog.records if MODEL_WOKE in r.getMessage()]
    assert len(woke_events) == 1


def test_wake_unknown_model_is_404_and_sleeping_without_version_is_409(ledger: Ledger):
    status, _ = call(routes.models_wake, "POST", "/api/models/ghost/wake", model="ghost")
    assert status == 404
    ledger.create(ModelRecord(model="empty", state="sleeping"))
    status, body = call(routes.models_wake, "POST", "/api/models/empty/wake", model="empty")
    assert status == 409 and body["error"]["code"] == "nothing_to_deploy"


def test_pin_and_unpin_set_the_flag_the_sweeper_reads(seeded: Ledger):
    status, body = call(routes.models_pin, "POST", "/api/models/faq-bot/pin", model="faq-bot")
    assert status == 200 and body["pinned"] is True and body["pinned_by"] == ["pin flag"]
    assert seeded.get(ModelRecord, "models", "faq-bot").pinned is True
    status, body = call(routes.models_pin, "POST", "/api/models/faq-bot/pin", model="faq-bot")  # idempotent
    assert status == 200 and body["pinned"] is True
    status, body = call(routes.models_unpin, "DELETE", "/api/models/faq-bot/pin", model="faq-bot")
    assert status == 200 and body["pinned"] is False
    assert seeded.get(ModelRecord, "models", "faq-bot").pinned is False
    status, _ = call(routes.models_pin, "POST", "/api/models/ghost/pin", model="ghost")
    assert status == 404


def test_pinned_models_setting_shows_in_the_view(seeded: Ledger, monkeypatch: pytest.MonkeyPatch):
    from shared.settings import reset_settings

    monkeypatch.setenv("PINNED_MODELS", "faq-bot")
    reset_settings()
    _, body = call(routes.models_get, "GET", "/api/models/faq-bot", model="faq-bot")
    assert body["pinned"] is True and body["pinned_by"] == ["PINNED_MODELS setting"]


def test_responses_hold_no_secrets(seeded: Ledger, app_env: dict[str, str]):
    seeded.upsert(ActivityRecord(model="faq-bot", last_request_at=iso()))
    _, body = call(routes.models_list, "GET", "/api/models")
    text = json.dumps(body)
    for key in app_env["GATEWAY_API_KEYS"].split(","):
        assert key not in text
    assert "AccountKey" not in text and "UseDevelopmentStorage" not in text
