"""Newer wins, and one reconciler per model, against the real ledger (Azurite).

Registration has already happened in these cases (the runs are ``registered``), so no platform call is made:
the rules under test live entirely in the ledger (ETag-checked writes and leases)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ledger import Ledger, ModelRecord, RunRecord
from shared.reconcile.tick import reconcile_model
from shared.runs.context import RunContext
from shared.runs.outcome import offer_version
from tests import factories


@pytest.fixture
def ctx(settings: Any, ledger: Ledger) -> RunContext:
    return RunContext(settings=settings, ledger=ledger)


def registered(ledger: Ledger, run_id: str, created_at: str, version: str, state: str = "registered") -> RunRecord:
    return factories.run(ledger, "bot", run_id, created_at=created_at, registered_version=version, state=state)


def test_an_older_run_completing_late_never_replaces_a_newer_one(ctx: RunContext) -> None:
    older = registered(ctx.ledger, "bot-old", "2026-11-20T10:00:00.000Z", "3")  # registered last: higher version
    newer = registered(ctx.ledger, "bot-new", "2026-11-20T11:00:00.000Z", "2")
    assert offer_version(ctx, newer) == "desired"
    assert offer_version(ctx, older) == "superseded"
    model = ctx.ledger.get(ModelRecord, "models", "bot")
    assert model is not None and (model.desired_version, model.desired_run_id) == ("2", "bot-new")
    assert model.state == "deploying"
    old = ctx.ledger.get(RunRecord, "bot", "bot-old")
    assert old is not None and old.state == "superseded" and old.details["superseded_by"] == "bot-new"
    assert offer_version(ctx, newer) == "unchanged"  # offered again (backstop, duplicate event): no change


def test_in_order_the_newer_run_takes_over_and_the_waiting_one_is_superseded(ctx: RunContext) -> None:
    first = registered(ctx.ledger, "bot-a", "2026-11-20T10:00:00.000Z", "1")
    second = registered(ctx.ledger, "bot-b", "2026-11-20T11:00:00.000Z", "2")
    assert offer_version(ctx, first) == "desired"
    assert offer_version(ctx, second) == "desired"
    model = ctx.ledger.get(ModelRecord, "models", "bot")
    assert model is not None and model.desired_run_id == "bot-b"
    waiting = ctx.ledger.get(RunRecord, "bot", "bot-a")
    assert waiting is not None and waiting.state == "superseded"


def test_a_failed_newer_run_does_not_block_an_older_good_one(ctx: RunContext) -> None:
    ctx.ledger.create(
        ModelRecord(
            model="bot",
            state="live",
            live_version="1",
            live_run_id="bot-live",
            desired_version="1",
            desired_run_id="bot-live",
        )
    )
    registered(ctx.ledger, "bot-live", "2026-11-19T10:00:00.000Z", "1", state="live")
    registered(ctx.ledger, "bot-bad", "2026-11-20T12:00:00.000Z", "3", state="failed")
    late = registered(ctx.ledger, "bot-late", "2026-11-20T10:00:00.000Z", "2")
    assert offer_version(ctx, late) == "desired"
    model = ctx.ledger.get(ModelRecord, "models", "bot")
    assert model is not None and model.desired_version == "2" and model.state == "live"  # v1 serves meanwhile


def test_a_sleeping_model_takes_the_new_version_but_stays_asleep(ctx: RunContext) -> None:
    ctx.ledger.create(ModelRecord(model="bot", state="sleeping", live_version="1", desired_version="1"))
    run = registered(ctx.ledger, "bot-next", "2026-11-20T10:00:00.000Z", "2")
    assert offer_version(ctx, run) == "desired"
    model = ctx.ledger.get(ModelRecord, "models", "bot")
    assert model is not None and model.state == "sleeping" and model.desired_version == "2"
    assert reconcile_model(ctx, "bot") == ["sleeping"]


def test_one_reconciler_per_model(ctx: RunContext) -> None:
    ctx.ledger.create(ModelRecord(model="bot", state="deploying", desired_version="1", desired_run_id="bot-a"))
    assert ctx.ledger.acquire_lease("model:bot", "another-worker", 60)
    before = ctx.ledger.get(ModelRecord, "models", "bot")
    assert reconcile_model(ctx, "bot") == ["skipped: another worker holds the lease"]
    after = ctx.ledger.get(ModelRecord, "models", "bot")
    assert before is not None and after is not None and after.etag == before.etag and after.deployment == {}
