"""The sweeper's write side against a real ledger on Azurite: what a sleep records, what it announces (to a
loopback Event Grid topic), and that anything changing the model between the sweep's read and its write wins.

No scoring processes here (the local backend has no endpoint by that name, so starting its deletion is a no-op);
the deletion of a real endpoint and its process is in ``test_sweeper_local.py``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from localml import LocalBackend
from shared.backends.base import MANAGED_TAG, MODEL_TAG, EndpointInfo
from shared.gateway.activity import ledger_writer
from shared.ledger import Ledger, ModelRecord
from shared.models import request_wake, set_pinned
from shared.settings import get_settings, reset_settings
from shared.sweeper import SLEEP, Observation, Outcome, Policy, act, decide
from shared.timeutil import iso, utcnow
from tests import factories
from tests.unit.test_telemetry_notify import TOPIC_KEY, _Topic

MODEL = "support-bot"
ENDPOINT = "at-support-bot"


@pytest.fixture
def topic(app_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Topic]:
    """A loopback Event Grid topic the app publishes its lifecycle events to."""
    server = _Topic()
    server.thread.start()
    monkeypatch.setenv("EVENTS_TOPIC_ENDPOINT", server.endpoint)
    monkeypatch.setenv("EVENTS_TOPIC_KEY", TOPIC_KEY)
    reset_settings()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def backend(app_env) -> Iterator[LocalBackend]:
    instance = LocalBackend(get_settings(), stop_on_exit=False)
    yield instance
    instance.shutdown()


def hours_ago(hours: float) -> str:
    return iso(utcnow() - timedelta(hours=hours))


# A live model of this file: deployed five hours ago (the factory's default), with its runs named.
live_model = functools.partial(
    factories.live_model,
    model=MODEL,
    endpoint=ENDPOINT,
    desired_run_id="support-bot-ccc",
    live_run_id="support-bot-ccc",
    scoring_uri="http://127.0.0.1:1/score",
)


def read(ledger: Ledger) -> Observation:
    """What ``observe`` reads for the model's endpoint: the record with its ETag, no recent activity."""
    info = EndpointInfo(name=ENDPOINT, state="Succeeded", tags={MANAGED_TAG: "true", MODEL_TAG: MODEL})
    return Observation(endpoint=info, model=MODEL, record=ledger.get(ModelRecord, "models", MODEL))


def sweep_one(obs: Observation, ledger: Ledger, backend: LocalBackend) -> Outcome:
    """Decide (it must be a sleep) and act, with the settings as they are now (dry run, events topic)."""
    settings = get_settings()
    decision = decide(obs, Policy.from_settings(settings), utcnow())
    assert decision.action == SLEEP, decision
    return act(decision, obs, settings, ledger, backend)


def test_sleep_records_why_keeps_the_versions_and_announces_slept_then_woke(ledger: Ledger, backend, topic: _Topic):
    live_model(ledger)
    outcome = sweep_one(read(ledger), ledger, backend)
    assert outcome.result == "slept"
    assert outcome.reason.startswith("idle 300 min (no requests since deployment at ")

    record = ledger.get(ModelRecord, "models", MODEL)
    assert record.state == "sleeping"
    assert record.sleep_reason == outcome.reason and record.slept_at
    assert (record.endpoint_name, record.scoring_uri, record.live_deployment) == ("", "", "")
    assert (record.live_version, record.desired_version) == ("3", "3")  # the UI says what sleeps; a wake redeploys it
    assert not ledger.lease_held(f"model:{MODEL}")  # the sweeper gave its lease back

    assert request_wake(get_settings(), ledger, MODEL, reason="test") is True
    woken = ledger.get(ModelRecord, "models", MODEL)
    assert woken.state == "deploying" and woken.desired_version == "3"
    assert woken.deployment == {"wake": "test"}  # no step yet; a failure of this rollout leaves it asleep
    assert woken.sleep_reason.startswith("woken by test")
    events = topic.events()
    assert [e["eventType"] for e in events] == ["Autotune.ModelSlept", "Autotune.ModelWoke"]
    slept, woke = events[0]["data"], events[1]["data"]
    assert slept["model"] == MODEL and slept["endpoint"] == ENDPOINT and slept["version"] == "3"
    assert slept["reason"] == outcome.reason
    assert woke["model"] == MODEL and woke["version"] == "3" and woke["reason"] == "test"
    assert events[0]["subject"] == f"models/{MODEL}"


def test_raced_by_another_sweep_and_a_wake_the_model_stays_awake(ledger: Ledger, backend, topic: _Topic):
    """Two instances sweep; one puts the model to sleep, a request wakes it, then the second one acts on what it
    read before: its ETag no longer matches, so it leaves the waking model alone."""
    live_model(ledger)
    stale = read(ledger)

    def other_sweeper(record: ModelRecord) -> ModelRecord:
        record.state, record.endpoint_name, record.slept_at, record.sleep_reason = "sleeping", "", iso(), "idle"
        return record

    ledger.mutate(ModelRecord, "models", MODEL, other_sweeper)
    assert request_wake(get_settings(), ledger, MODEL, reason="gateway request")
    outcome = sweep_one(stale, ledger, backend)
    assert outcome.result == "skipped" and "changed since the sweep read it" in outcome.reason
    record = ledger.get(ModelRecord, "models", MODEL)
    assert record.state == "deploying" and record.sleep_reason.startswith("woken by gateway request")
    assert "Autotune.ModelSlept" not in [e["eventType"] for e in topic.events()]


@pytest.mark.parametrize(
    "change",
    [
        lambda ledger: set_pinned(ledger, MODEL, True),
        lambda ledger: ledger.mutate(ModelRecord, "models", MODEL, lambda r: setattr(r, "desired_version", "4") or r),
    ],
    ids=["pinned-meanwhile", "new-version-desired-meanwhile"],
)
def test_any_change_after_the_read_wins_over_the_sweep(ledger: Ledger, backend, change):
    live_model(ledger)
    stale = read(ledger)
    change(ledger)
    outcome = sweep_one(stale, ledger, backend)
    assert outcome.result == "skipped"
    assert ledger.get(ModelRecord, "models", MODEL).state == "live"


def test_a_request_after_the_read_keeps_the_endpoint(ledger: Ledger, backend, topic: _Topic):
    """The sweep read no activity, then spent its time on the endpoints' metrics; meanwhile a request came
    through the gateway. It looks at the activity again right before deleting, and keeps the endpoint."""
    live_model(ledger)
    stale = read(ledger)
    ledger_writer(ledger)(MODEL, iso(utcnow()))  # what the gateway records for a request
    outcome = sweep_one(stale, ledger, backend)
    assert outcome.result == "skipped" and "active again" in outcome.reason
    record = ledger.get(ModelRecord, "models", MODEL)
    assert record.state == "live" and record.endpoint_name == ENDPOINT
    assert topic.events() == []
    assert not ledger.lease_held(f"model:{MODEL}")


def test_a_reconciler_holding_the_lease_when_the_sweep_acts_wins(ledger: Ledger, backend):
    live_model(ledger)
    stale = read(ledger)
    assert ledger.acquire_lease(f"model:{MODEL}", "reconcile:elsewhere", 60)
    outcome = sweep_one(stale, ledger, backend)
    assert outcome.result == "skipped" and "lease" in outcome.reason
    assert ledger.get(ModelRecord, "models", MODEL).state == "live"
    assert ledger.lease_held(f"model:{MODEL}")  # not released by the sweeper: it was never its lease


def test_dry_run_logs_what_it_would_delete_and_changes_nothing(
    ledger: Ledger, backend, topic: _Topic, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv("IDLE_SWEEP_DRY_RUN", "true")
    reset_settings()
    caplog.set_level(logging.INFO, logger="shared.sweeper")
    before = live_model(ledger)
    outcome = sweep_one(read(ledger), ledger, backend)
    assert outcome.result == "would_sleep"
    after = ledger.get(ModelRecord, "models", MODEL)
    assert after.etag == before.etag and after.state == "live" and after.endpoint_name == ENDPOINT
    assert f"would delete endpoint {ENDPOINT} of model {MODEL}" in caplog.text
    assert topic.events() == []


def test_a_sleeping_model_whose_endpoint_survived_is_deleted_again_unless_woken(ledger: Ledger, backend, topic):
    live_model(ledger)
    ledger.mutate(
        ModelRecord,
        "models",
        MODEL,
        lambda r: setattr(r, "state", "sleeping") or setattr(r, "endpoint_name", "") or r,
    )
    outcome = sweep_one(read(ledger), ledger, backend)
    assert outcome.result == "slept" and "still exists" in outcome.reason
    assert topic.events() == []  # announced when it fell asleep, not again

    stale = read(ledger)
    assert request_wake(get_settings(), ledger, MODEL, reason="gateway request")
    assert sweep_one(stale, ledger, backend).result == "skipped"
    assert ledger.get(ModelRecord, "models", MODEL).state == "deploying"
