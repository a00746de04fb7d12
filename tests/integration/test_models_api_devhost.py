"""The models API and the sweep timer through the devhost (``python -m devhost`` running function_app.py).

The endpoints are real local endpoints (their router processes, no model servers: an endpoint is what the
sweeper deletes), created here and adopted by the devhost's own local backend, as after a host restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from devhost.testing import DevHostProcess
from localml import LocalBackend
from localml.state import alive, read_json
from shared.backends.base import MODEL_TAG
from shared.ledger import Ledger, ModelRecord
from shared.settings import Settings
from shared.timeutil import iso, utcnow
from tests import factories
from tests.integration.test_runs_support import wait_for


@pytest.fixture
def backend(settings: Settings) -> Iterator[LocalBackend]:
    instance = LocalBackend(settings, stop_on_exit=False)
    yield instance
    instance.shutdown()


def serving_model(ledger: Ledger, backend: LocalBackend, model: str) -> dict:
    """A live model deployed three hours ago, on a real (empty) endpoint; returns the router's process record."""
    endpoint = f"at-{model}"
    backend.begin_endpoint(endpoint, {MODEL_TAG: model})
    factories.live_model(ledger, model, version="1", deployed_at=iso(utcnow() - timedelta(hours=3)))
    return read_json(backend.layout.endpoint(endpoint) / "router.json")


def test_models_api_and_sweep_timer_through_the_devhost(app_env, ledger: Ledger, backend: LocalBackend):
    idle_router = serving_model(ledger, backend, "faq-bot")
    pinned_router = serving_model(ledger, backend, "support-bot")
    # No reconcile tick: its drift repair would (rightly) put these hand-made live models, whose endpoints have no
    # deployment, to sleep (and wake the pinned one); this test is about the models API and the sweep timer.
    env = {**app_env, "RECONCILE_SCHEDULE": "0 0 0 1 1 *"}
    with DevHostProcess(env=env) as host, httpx.Client(base_url=host.url, timeout=30) as http:
        listing = http.get("/api/models")
        assert listing.status_code == 200, listing.text
        views = {view["model"]: view for view in listing.json()["models"]}
        assert set(views) == {"faq-bot", "support-bot"}
        assert views["faq-bot"]["state"] == "live" and views["faq-bot"]["endpoint"] == "at-faq-bot"
        assert views["faq-bot"]["idle_in_minutes"] < 0  # overdue: the next sweep puts it to sleep

        pinned = http.post("/api/models/support-bot/pin")
        assert pinned.status_code == 200 and pinned.json()["pinned_by"] == ["pin flag"]
        assert pinned.json()["idle_at"] is None

        assert http.post("/admin/functions/sweep_idle_endpoints", json={"input": ""}).status_code == 202
        wait_for(lambda: ledger.get(ModelRecord, "models", "faq-bot").state == "sleeping", 60, "faq-bot to sleep")
        wait_for(lambda: not alive(idle_router), 15, "the idle endpoint's router to stop")
        assert alive(pinned_router) and ledger.get(ModelRecord, "models", "support-bot").state == "live"

        asleep = http.get("/api/models/faq-bot").json()
        assert asleep["state"] == "sleeping" and asleep["endpoint"] is None and asleep["live_version"] == "1"
        assert asleep["sleep_reason"].startswith("idle 180 min (no requests since deployment at ")

        woke = http.post("/api/models/faq-bot/wake")
        assert woke.status_code == 202 and woke.json()["state"] == "deploying"
        assert woke.headers["Location"] == "/api/models/faq-bot"

        unpinned = http.delete("/api/models/support-bot/pin")
        assert unpinned.status_code == 200 and unpinned.json()["pinned"] is False
        missing = http.get("/api/models/nobody")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
