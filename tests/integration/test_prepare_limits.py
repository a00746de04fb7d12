"""A preparation can never keep the system busy for ever: a drop over MAX_DROP_BYTES is refused at once with the
reason, a preparation that keeps dying is started at most PREPARE_MAX_ATTEMPTS times and then recorded as failed
(the upload kept; dropping it again starts a new count), and the reconcile tick never re-drives preparations.

Real Azurite and ingestion's own entry points. The "poison" is a process death injected at the crash point after
the outputs are written and before they are recorded (``shared.crashpoints``): an exception no handler in the app
catches, as if the process had died there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared import crashpoints, ingest
from shared.ingest import ingest_blob
from shared.ledger import DatasetRecord, ModelRecord
from shared.reconcile.datasets import redrive_stale_datasets
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from shared.settings import get_settings, reset_settings
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import chat_rows, jsonl

container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training

MODEL = "poison-bot"


class Died(BaseException):
    """The process dying mid-preparation."""


@pytest.fixture
def poison() -> Iterator[list[str]]:
    """Every preparation of MODEL dies; returns the list of deaths."""
    deaths: list[str] = []

    def hook(point: str, when: str, model: str) -> None:
        if point == "prepare" and model == MODEL:
            deaths.append(model)
            raise Died("the process died preparing the poisoned file")

    previous = crashpoints.install(hook)
    yield deaths
    crashpoints.install(previous)


@pytest.fixture
def ctx(container, monkeypatch: pytest.MonkeyPatch, no_training) -> RunContext:
    monkeypatch.setenv("PREPARE_MAX_ATTEMPTS", "3")
    monkeypatch.setattr(ingest, "STALE_CLAIM_SECONDS", 0)  # a claim whose owner died is stale at once
    reset_settings()
    from shared.ledger import Ledger

    settings = get_settings()
    return RunContext(settings, Ledger(settings))


def drop(container, name: str, data: bytes):
    client = container.get_blob_client(name)
    client.upload_blob(data, overwrite=True)
    return client


def dataset(ctx: RunContext, dataset_id: str) -> DatasetRecord:
    record = ctx.ledger.get(DatasetRecord, MODEL, dataset_id)
    assert record is not None
    return record


def test_a_preparation_that_keeps_dying_ends_failed_after_max_attempts(ctx, container, poison) -> None:
    client = drop(container, f"incoming/{MODEL}/poison.jsonl", jsonl(chat_rows(30)))
    with pytest.raises(Died):
        ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)  # the delivery: attempt 1
    (record,) = ctx.ledger.query_eq(DatasetRecord, PartitionKey=MODEL)
    assert record.state == "preparing" and record.attempts == 1

    for attempt in (2, 3):  # the re-drive timer's invocations, each dying like the first
        with pytest.raises(Died):
            redrive_stale_datasets(ctx)
        assert dataset(ctx, record.dataset_id).attempts == attempt

    key = f"{MODEL}/{record.dataset_id}"
    assert redrive_stale_datasets(ctx) == {key: "failed"}  # not started a fourth time
    assert len(poison) == 3
    failed = dataset(ctx, record.dataset_id)
    assert failed.state == "failed" and "started 3 times (PREPARE_MAX_ATTEMPTS=3)" in failed.error
    assert f"kept at {container.container_name}/incoming/{MODEL}/poison.jsonl" in failed.error
    assert client.exists()  # the upload is kept
    assert redrive_stale_datasets(ctx) == {}
    # The host delivering the same blob again changes nothing and does not raise (it would retry for ever).
    again = ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
    assert again.action == "failed" and len(poison) == 3

    # Dropped again (a new version of the blob) with the cause gone: a new count, and it is prepared.
    crashpoints.install(None)
    client = drop(container, f"incoming/{MODEL}/poison.jsonl", jsonl(chat_rows(30)))
    result = ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
    assert result.action == "prepared" and dataset(ctx, record.dataset_id).attempts == 1


def test_the_reconcile_tick_never_prepares(ctx, container, poison) -> None:
    client = drop(container, f"incoming/{MODEL}/poison.jsonl", jsonl(chat_rows(30)))
    with pytest.raises(Died):
        ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)
    ctx.ledger.create(ModelRecord(model="other-bot", state="new"))

    report = reconcile_all(ctx)  # a stale claim is there, but the tick goes straight to the models

    assert report.models == {"other-bot": ["idle"]} and len(poison) == 1
    assert "datasets" not in report.as_dict()
    (record,) = ctx.ledger.query_eq(DatasetRecord, PartitionKey=MODEL)
    assert record.state == "preparing" and record.attempts == 1


def test_a_drop_over_max_drop_bytes_is_refused_at_once(ctx, container, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_DROP_BYTES", "4096")
    reset_settings()
    settings = get_settings()
    data = jsonl(chat_rows(60))
    assert len(data) > 4096
    client = drop(container, f"incoming/{MODEL}/huge.jsonl", data)

    result = ingest_blob(client, settings=settings, ledger=ctx.ledger)

    assert result.action == "rejected"
    record = dataset(ctx, result.dataset_id)
    assert record.state == "rejected" and record.report["rejection"]["reason"] == "too_large"
    assert f"the file is {len(data)} bytes" in record.error and "over MAX_DROP_BYTES (4096" in record.error
    assert "Split it into smaller files" in record.error
    report = json.loads(container.download_blob(f"{record.prefix}report.json").readall())
    assert report["rejection"]["reason"] == "too_large" and report["bytes"] == len(data)
    assert not container.get_blob_client(f"{record.prefix}train.jsonl").exists()
    assert ingest_blob(client, settings=settings, ledger=ctx.ledger).dataset_id == result.dataset_id  # idempotent
    assert len(ctx.ledger.query_eq(DatasetRecord, PartitionKey=MODEL)) == 1
