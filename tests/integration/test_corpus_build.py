"""Materialising a corpus in Azurite: blob to blob, in pieces that resume, manifest last."""

from __future__ import annotations

import json

import pytest

from shared.corpus import CorpusOptions, build_corpus, corpus_blob, read_manifest, select
from shared.timeutil import utcnow
from tests.integration.ingest_helpers import container, put_dataset  # noqa: F401 - fixture
from tests.unit.chatdata_helpers import many


@pytest.fixture
def three(container):  # noqa: F811
    return [
        put_dataset(container, "d1", many(40, "one"), 3),
        put_dataset(container, "d2", [*many(40, "one")[:10], *many(30, "two")], 2),
        put_dataset(container, "d3", many(25, "three"), 1),
    ]


def lines(container, name: str) -> list[bytes]:  # noqa: F811
    return container.download_blob(name).readall().splitlines()


def test_a_corpus_built_in_one_call(container, three) -> None:  # noqa: F811
    selection = select("bot", three, CorpusOptions(test_percent=20), utcnow())
    result = build_corpus(container, selection, budget_seconds=600)
    assert result.done and result.members_done == 3
    manifest = read_manifest(container, "bot", selection.corpus_id)
    assert manifest == result.manifest
    assert [d["dataset_id"] for d in manifest["datasets"]] == ["d1", "d2", "d3"]
    assert [d["duplicates"] for d in manifest["datasets"]] == [0, 10, 0]
    assert manifest["train"] + manifest["test"] == 40 + 30 + 25
    train = lines(container, manifest["files"]["train"])
    test = lines(container, manifest["files"]["test"])
    assert (len(train), len(test)) == (manifest["train"], manifest["test"])
    assert manifest["files"]["train"] == corpus_blob("bot", selection.corpus_id, "train.jsonl")
    assert manifest["settings"]["TEST_SPLIT_PERCENT"] == 20 and manifest["mode"] == "cumulative"
    assert not list(container.list_blobs(name_starts_with=f"datasets/bot/corpora/{selection.corpus_id}/state/"))
    again = build_corpus(container, selection)  # complete: answered from the manifest, nothing rebuilt
    assert again.done and again.resumed_from == 0 and again.seconds == 0.0


def test_a_corpus_built_one_member_per_call_equals_one_pass(container, three) -> None:  # noqa: F811
    one_pass = select("bot", three, CorpusOptions(test_percent=20), utcnow())
    whole = build_corpus(container, one_pass, budget_seconds=600).manifest
    stepwise = select("bot", three, CorpusOptions(test_percent=20, max_train_rows=10_000), utcnow())
    assert stepwise.corpus_id != one_pass.corpus_id  # another corpus id: built apart, in its own folder
    progress = []
    while not (result := build_corpus(container, stepwise, budget_seconds=0)).done:
        progress.append(result.members_done)
    assert progress == [1, 2]
    assert result.resumed_from == 2 and result.members_done == 3
    for split in ("train", "test"):
        assert lines(container, result.manifest["files"][split]) == lines(container, whole["files"][split])


def test_a_build_that_crashed_on_a_member_resumes_there(container, three) -> None:  # noqa: F811
    container.delete_blob("datasets/bot/d2/test.jsonl")  # the second member cannot be read to its end
    selection = select("bot", three, CorpusOptions(test_percent=20), utcnow())
    with pytest.raises(Exception, match=r"BlobNotFound|not exist"):
        build_corpus(container, selection, budget_seconds=600)
    progress = json.loads(
        container.download_blob(corpus_blob("bot", selection.corpus_id, "state/progress.json")).readall()
    )
    assert [item["dataset_id"] for item in progress["done"]] == ["d1"]  # checkpointed after the first member
    assert read_manifest(container, "bot", selection.corpus_id) is None
    put_dataset(container, "d2", [*many(40, "one")[:10], *many(30, "two")], 2)  # the file is back
    result = build_corpus(container, selection, budget_seconds=600)
    assert result.done and result.resumed_from == 1
    assert [d["duplicates"] for d in result.manifest["datasets"]] == [0, 10, 0]
    train = lines(container, result.manifest["files"]["train"])
    test = lines(container, result.manifest["files"]["test"])
    assert len(train) + len(test) == 95 and len(set(train + test)) == 95


def test_latest_mode_points_at_the_newest_datasets_own_files(container, three) -> None:  # noqa: F811
    selection = select("bot", three, CorpusOptions(mode="latest", test_percent=20), utcnow())
    result = build_corpus(container, selection)
    assert result.done and [d["dataset_id"] for d in result.manifest["datasets"]] == ["d3"]
    assert result.manifest["files"] == {"train": "datasets/bot/d3/train.jsonl", "test": "datasets/bot/d3/test.jsonl"}
    assert not list(container.list_blobs(name_starts_with=f"datasets/bot/corpora/{selection.corpus_id}/t"))
