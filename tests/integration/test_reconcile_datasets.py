"""The re-drive timer prepares again a dataset whose preparation crashed (left ``preparing`` with a stale heartbeat)
from its source blob on Azurite, through ingestion's own entry point; a preparation still alive is left alone, and a
source blob deleted since is recorded as the dataset's error instead of being retried forever."""

from __future__ import annotations

from datetime import timedelta

from shared.chatdata import content_id
from shared.dropzone import dataset_prefix
from shared.ingest import STALE_CLAIM_SECONDS
from shared.ledger import DatasetRecord, Ledger
from shared.reconcile.datasets import redrive_stale_datasets
from shared.runs.context import RunContext
from shared.timeutil import iso, utcnow
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import chat_rows, jsonl, read_jsonl, runs_of

MODEL = "crash-bot"
container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training


def left_preparing(container, ledger: Ledger, name: str, data: bytes, *, age_seconds: float) -> DatasetRecord:
    """An uploaded blob and the claim a delivery that died ``age_seconds`` ago (its last heartbeat) left behind."""
    container.get_blob_client(name).upload_blob(data, overwrite=True)
    dataset_id = content_id(iter([data])).dataset_id
    record = DatasetRecord(
        model=MODEL,
        dataset_id=dataset_id,
        source_blob=f"{container.container_name}/{name}",
        prefix=dataset_prefix(MODEL, dataset_id),
        updated_at=iso(utcnow() - timedelta(seconds=age_seconds)),
    )
    created = ledger.create(record)
    assert created.state == "preparing"
    return created


def test_one_tick_prepares_a_stale_dataset_and_leaves_a_live_one(container, ledger, settings, no_training):
    crashed = left_preparing(
        container, ledger, f"incoming/{MODEL}/crashed.jsonl", jsonl(chat_rows(40)), age_seconds=STALE_CLAIM_SECONDS + 60
    )
    alive = left_preparing(
        container, ledger, f"incoming/{MODEL}/alive.jsonl", jsonl(chat_rows(30, tag="b ")), age_seconds=5
    )
    ctx = RunContext(settings=settings, ledger=ledger)

    report = redrive_stale_datasets(ctx)

    assert report == {f"{MODEL}/{crashed.dataset_id}": "prepared"}
    record = ledger.get(DatasetRecord, MODEL, crashed.dataset_id)
    assert record is not None and record.state == "prepared" and record.report["train"] > 0
    assert record.run_id and [run.run_id for run in runs_of(ledger, MODEL)] == [record.run_id]
    assert len(read_jsonl(container, f"{crashed.prefix}train.jsonl")) == record.report["train"]
    still = ledger.get(DatasetRecord, MODEL, alive.dataset_id)
    assert still is not None and still.state == "preparing" and still.updated_at == alive.updated_at
    assert not container.get_blob_client(f"{alive.prefix}train.jsonl").exists()
    # The next tick has nothing left to re-drive.
    assert redrive_stale_datasets(ctx) == {}


def test_a_stale_dataset_whose_blob_is_gone_fails_with_the_reason(container, ledger, settings, no_training):
    name = f"incoming/{MODEL}/deleted.jsonl"
    gone = left_preparing(container, ledger, name, jsonl(chat_rows(10)), age_seconds=STALE_CLAIM_SECONDS + 60)
    container.delete_blob(name)
    ctx = RunContext(settings=settings, ledger=ledger)

    assert redrive_stale_datasets(ctx) == {f"{MODEL}/{gone.dataset_id}": "failed"}
    record = ledger.get(DatasetRecord, MODEL, gone.dataset_id)
    assert record is not None and record.state == "failed"
    assert name in record.error and "upload the data again" in record.error
    assert redrive_stale_datasets(ctx) == {}
