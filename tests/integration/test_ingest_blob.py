"""The blob trigger's work on Azurite with real BlobClients: outputs, ledger record, one run per dataset however
often (and in whatever form) the same content is delivered; rejected and ignored blobs; claims; streaming I/O."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta

import pytest

from functions import ingest as triggers
from shared.blobstream import BlobChangedError, BlockBlobWriter, read_chunks
from shared.dropzone import classify
from shared.ingest import STALE_CLAIM_SECONDS, IngestBusyError, ingest_blob
from shared.ledger import DatasetRecord
from shared.timeutil import iso, utcnow
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import chat_rows, jsonl, read_jsonl, runs_of

MODEL = "support-bot"
container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training


def put(container, name: str, data: bytes):
    client = container.get_blob_client(name)
    client.upload_blob(data, overwrite=True)
    return client


def test_blob_is_prepared_once_and_a_second_delivery_changes_nothing(container, ledger, no_training):
    data = jsonl(chat_rows(80), extra=b"{not json\n" + jsonl(chat_rows(1)))  # one bad line, one duplicate
    client = put(container, f"incoming/{MODEL}/2026-11-20.jsonl", data)
    source_etag = client.get_blob_properties().etag

    first = ingest_blob(client)
    assert first.action == "prepared"
    prefix = f"datasets/{MODEL}/{first.dataset_id}/"
    report = json.loads(container.download_blob(f"{prefix}report.json").readall())
    assert report["total_lines"] == 82 and report["rejected"] == 2
    assert report["reasons"] == {"invalid_json": 1, "duplicate": 1}
    train, test = read_jsonl(container, f"{prefix}train.jsonl"), read_jsonl(container, f"{prefix}test.jsonl")
    rejected = read_jsonl(container, f"{prefix}rejected.jsonl")
    assert len(train) == report["train"] and len(test) == report["test"] and len(train) + len(test) == 80
    assert [r["line"] for r in rejected] == [81, 82]
    assert set(train[0]) == {"prompt", "prompt_id", "messages"}

    record = ledger.get(DatasetRecord, MODEL, first.dataset_id)
    assert record.state == "prepared" and record.prefix == prefix
    assert record.source_blob == f"{container.container_name}/incoming/{MODEL}/2026-11-20.jsonl"
    assert record.report["train"] == report["train"]
    runs = runs_of(ledger, MODEL)
    assert [run.dataset_id for run in runs] == [first.dataset_id]
    assert record.run_id == runs[0].run_id == first.run_id

    second = ingest_blob(client)  # the trigger fires again (at-least-once delivery)
    assert second.action == "existing"
    assert (second.dataset_id, second.run_id) == (first.dataset_id, first.run_id)
    assert len(runs_of(ledger, MODEL)) == 1
    # the upload itself is never modified
    assert client.get_blob_properties().etag == source_etag
    assert client.download_blob().readall() == data


def test_same_content_gzipped_under_another_name_is_the_same_dataset(container, ledger, no_training):
    data = jsonl(chat_rows(40))
    plain = ingest_blob(put(container, f"incoming/{MODEL}/a.jsonl", data))
    zipped = ingest_blob(put(container, f"incoming/{MODEL}/b.jsonl.gz", gzip.compress(data)))
    assert plain.action == "prepared" and zipped.action == "existing"
    assert zipped.dataset_id == plain.dataset_id
    assert len(runs_of(ledger, MODEL)) == 1


def test_the_function_app_trigger_delivered_twice_makes_one_dataset_and_one_run(container, ledger, no_training):
    client = put(container, f"incoming/{MODEL}/drop.jsonl", jsonl(chat_rows(50)))
    handler = triggers.ingest_blob.build().get_user_function()
    handler(client)
    handler(client)
    records = ledger.query_eq(DatasetRecord, PartitionKey=MODEL)
    assert [r.state for r in records] == ["prepared"]
    runs = runs_of(ledger, MODEL)
    assert len(runs) == 1 and runs[0].dataset_id == records[0].dataset_id
    # submission failed fast on the missing base model: the run says why, and nothing was trained
    assert runs[0].state == "failed" and "LOCAL_BASE_MODEL" in runs[0].error
    assert container.get_blob_client(f"datasets/{MODEL}/{records[0].dataset_id}/train.jsonl").exists()


def test_a_csv_is_recorded_as_rejected_with_one_sentence_and_no_run(container, ledger, no_training):
    client = put(container, f"incoming/{MODEL}/export.csv", b"prompt,completion\nhi,hello\nbye,ciao\n")
    result = ingest_blob(client)
    assert result.action == "rejected"
    record = ledger.get(DatasetRecord, MODEL, result.dataset_id)
    assert record.state == "rejected"
    assert record.error.startswith("The file is not JSON Lines: it looks like CSV")
    assert record.report["rejection"]["code"] == "not_jsonl"
    assert runs_of(ledger, MODEL) == []
    assert container.get_blob_client(f"{record.prefix}rejected.jsonl").exists()
    assert ingest_blob(client).action == "existing"


def test_too_small_dataset_is_rejected_with_the_minimum(container, ledger, no_training):
    result = ingest_blob(put(container, f"incoming/{MODEL}/tiny.jsonl", jsonl(chat_rows(4))))
    assert result.action == "rejected"
    assert "at least 10" in result.message
    assert runs_of(ledger, MODEL) == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (f"incoming/{MODEL}/finetune.json", "parameters"),
        (f"incoming/{MODEL}/eval.jsonl", "golden"),
        ("incoming/loose.jsonl", "ignored"),
        ("incoming/Support_Bot/data.jsonl", "ignored"),
        (f"incoming/{MODEL}/.hidden.jsonl", "ignored"),
        (f"incoming/{MODEL}/sub/dir.jsonl", "ignored"),
        (f"incoming/{MODEL}/imports/abc.import.json", "import"),
        (f"incoming/{MODEL}/data.jsonl.gz", "dataset"),
    ],
)
def test_classify_names(name, kind):
    assert classify(name).kind == kind


def test_ignored_blobs_create_nothing(container, ledger):
    names = (f"incoming/{MODEL}/finetune.json", f"incoming/{MODEL}/eval.jsonl", "incoming/Support_Bot/data.jsonl")
    for name in (*names, "incoming/loose.jsonl"):
        result = ingest_blob(put(container, name, jsonl(chat_rows(20))))
        assert result.action == "ignored" and result.message
    gone = put(container, f"incoming/{MODEL}/deleted.jsonl", jsonl(chat_rows(20)))
    gone.delete_blob()  # deleted before the (late) event was handled
    assert ingest_blob(gone).message.endswith("no longer exists")
    assert ledger.query_eq(DatasetRecord, PartitionKey=MODEL) == []


def test_a_second_delivery_waits_for_a_live_claim_then_retries_or_takes_over_a_dead_one(
    container, ledger, no_training, monkeypatch
):
    from shared import ingest
    from shared.chatdata import content_id

    monkeypatch.setattr(ingest, "BUSY_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(ingest, "BUSY_POLL_SECONDS", 0.05)
    data = jsonl(chat_rows(30))
    client = put(container, f"incoming/{MODEL}/c.jsonl", data)
    dataset_id = content_id([data]).dataset_id
    ledger.create(DatasetRecord(model=MODEL, dataset_id=dataset_id, state="preparing"))
    with pytest.raises(IngestBusyError, match="retry later"):  # the owner is alive but slow: the host retries
        ingest_blob(client)
    ledger.mutate(DatasetRecord, MODEL, dataset_id, _stale)  # the owner died: its heartbeat stopped
    assert ingest_blob(client).action == "prepared"
    assert ledger.get(DatasetRecord, MODEL, dataset_id).state == "prepared"


def test_a_second_delivery_answers_from_the_ledger_once_the_first_finishes(container, ledger, no_training, monkeypatch):
    from shared import ingest
    from shared.chatdata import content_id

    monkeypatch.setattr(ingest, "BUSY_POLL_SECONDS", 0.05)
    data = jsonl(chat_rows(30))
    client = put(container, f"incoming/{MODEL}/w.jsonl", data)
    dataset_id = content_id([data]).dataset_id
    ledger.create(DatasetRecord(model=MODEL, dataset_id=dataset_id, state="preparing"))

    def finish(record: DatasetRecord) -> DatasetRecord:
        record.state = "rejected"
        return record

    timer = threading.Timer(0.3, lambda: ledger.mutate(DatasetRecord, MODEL, dataset_id, finish))
    timer.start()
    try:
        assert ingest_blob(client).action == "existing"
    finally:
        timer.join()


def test_heartbeat_keeps_a_claim_alive(ledger):
    from shared.ingest import heartbeat

    record = ledger.create(DatasetRecord(model=MODEL, dataset_id="0" * 16, state="preparing", updated_at="2020-01-01"))
    assert list(heartbeat([b"a", b"b"], ledger, record, every=0)) == [b"a", b"b"]
    touched = ledger.get(DatasetRecord, MODEL, "0" * 16)
    assert touched.updated_at > "2026" and touched.state == "preparing"


def _stale(record: DatasetRecord) -> DatasetRecord:
    record.updated_at = iso(utcnow() - timedelta(seconds=STALE_CLAIM_SECONDS + 60))
    return record


def test_failed_preparation_is_recorded_and_retried(container, ledger, no_training):
    from shared.chatdata import content_id

    data = jsonl(chat_rows(30))
    client = put(container, f"incoming/{MODEL}/f.jsonl", data)
    dataset_id = content_id([data]).dataset_id
    ledger.create(DatasetRecord(model=MODEL, dataset_id=dataset_id, state="failed", error="storage hiccup"))
    result = ingest_blob(client)
    assert result.action == "prepared"
    record = ledger.get(DatasetRecord, MODEL, dataset_id)
    assert record.state == "prepared" and record.error == ""


def test_streaming_reads_and_block_writes(container):
    data = bytes(range(256)) * 40  # 10 KiB
    client = put(container, "incoming/x/stream.bin", data)
    assert b"".join(read_chunks(client, chunk_size=1000)) == data
    chunks = read_chunks(client, chunk_size=4096)
    assert next(chunks) == data[:4096]
    client.upload_blob(b"replaced", overwrite=True)
    with pytest.raises(BlobChangedError):
        next(chunks)

    out = container.get_blob_client("datasets/x/out.jsonl")
    with BlockBlobWriter(out, block_size=1000) as writer:
        for i in range(0, len(data), 300):
            writer.write(data[i : i + 300])
    assert out.download_blob().readall() == data
    assert len(out.get_block_list("committed")[0]) == 9  # staged once 1000 bytes are buffered: 1200-byte blocks
    empty = container.get_blob_client("datasets/x/empty.jsonl")
    BlockBlobWriter(empty).close()
    assert empty.download_blob().readall() == b""
