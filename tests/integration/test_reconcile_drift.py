"""Drift repair on the real local platform: a live model whose endpoint or deployment was deleted by hand is
recorded as sleeping (a pinned one is redeployed at once), traffic moved by hand is put back, and each repair is
logged and announced as Autotune.ModelDrifted on a real (loopback) Event Grid topic."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.ledger import ModelRecord
from shared.notify import MODEL_DRIFTED
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from tests.integration import test_runs_support as support
from tests.integration.platform_support import leftover_deployment, live_model
from tests.integration.test_runs_support import make_context, model_of
from tests.unit.test_telemetry_notify import TOPIC_KEY, _Topic

event_sink = support.event_sink  # fixtures


@pytest.fixture
def topic() -> Iterator[_Topic]:
    server = _Topic()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def ctx(app_env, event_sink, topic: _Topic, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunContext]:
    context = make_context(
        monkeypatch,
        AUTOTUNE_HOST_URL=event_sink.url,
        EVENTS_TOPIC_ENDPOINT=topic.endpoint,
        EVENTS_TOPIC_KEY=TOPIC_KEY,
        PINNED_MODELS="pinned-bot",
    )
    yield context
    support.shutdown_backend(context)


def deployed(ctx: RunContext, model: str, tmp: Path) -> ModelRecord:
    endpoint = f"at-{model}"
    leftover_deployment(ctx, endpoint, "v1", model, tmp)
    return live_model(ctx, model, endpoint, "v1")


def drifted(topic: _Topic) -> dict[str, dict]:
    return {e["data"]["model"]: e["data"] for e in topic.events() if e["eventType"] == MODEL_DRIFTED}


def test_each_kind_of_drift_is_repaired_once(
    ctx: RunContext, topic: _Topic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.reconcile.drift")
    for model in ("fine-bot", "no-endpoint-bot", "no-deployment-bot", "traffic-bot", "pinned-bot"):
        deployed(ctx, model, tmp_path)
    assert reconcile_all(ctx).drift == {}  # ledger and platform agree

    ctx.backend.begin_delete_endpoint("at-no-endpoint-bot")
    ctx.backend.set_traffic("at-no-deployment-bot", {"v1": 0})  # as Azure requires before deleting a deployment
    ctx.backend.begin_delete_deployment("at-no-deployment-bot", "v1")
    leftover_deployment(ctx, "at-traffic-bot", "canary", "traffic-bot", tmp_path)
    ctx.backend.set_traffic("at-traffic-bot", {"v1": 50, "canary": 50})
    ctx.backend.begin_delete_endpoint("at-pinned-bot")

    report = reconcile_all(ctx)

    sleeping = "recorded as sleeping: the next request or POST /wake redeploys it"
    assert report.drift == {
        "no-endpoint-bot": sleeping,
        "no-deployment-bot": sleeping,
        "traffic-bot": "traffic restored: 100% to v1",
        "pinned-bot": "redeploying version 1 (pinned model)",
    }
    for model, gone in (("no-endpoint-bot", "endpoint at-no-endpoint-bot"), ("no-deployment-bot", "deployment")):
        record = model_of(ctx, model)
        assert record.state == "sleeping" and not record.endpoint_name and not record.live_deployment
        assert record.live_version == "1" and record.desired_version == "1"
        assert gone in record.sleep_reason and "deleted outside autotune" in record.sleep_reason
    assert ctx.backend.get_endpoint("at-traffic-bot").traffic == {"v1": 100, "canary": 0}
    # The pinned model's rollout starts in the same tick (its version was never registered on this platform,
    # so it cannot get far here; the fault-injection tests redeploy a real one).
    assert report.models["pinned-bot"][:2] == ["start", "endpoint"]
    assert model_of(ctx, "pinned-bot").sleep_reason.startswith("woken by drift repair (pinned model)")
    assert model_of(ctx, "fine-bot").state == "live"

    events = drifted(topic)
    assert set(events) == set(report.drift)
    assert events["no-endpoint-bot"]["found"] == "endpoint at-no-endpoint-bot is gone"
    assert events["no-deployment-bot"]["found"] == "deployment at-no-deployment-bot/v1 is gone"
    assert events["traffic-bot"]["repair"] == "traffic restored: 100% to v1"
    logged = [r.getMessage() for r in caplog.records if "drifted" in r.getMessage()]
    assert len(logged) == 4 and any("model no-endpoint-bot drifted: endpoint" in line for line in logged)

    assert reconcile_all(ctx).drift == {}  # repaired once; nothing drifts any more
