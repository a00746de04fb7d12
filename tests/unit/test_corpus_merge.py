"""The corpus's pure parts: a prepared row's digest, merging members (dedup, split), and choosing members."""

from __future__ import annotations

import json
from datetime import timedelta

import orjson
import pytest

from shared.chatdata import conversation_digest, split_of
from shared.chatdata.prepared import PreparedRowError, prepared_row_digest, row_digest
from shared.corpus import CorpusDataError, CorpusOptions, Merger, corpus_id, select
from shared.corpus.merge import load_digests
from shared.ledger import DatasetRecord
from shared.timeutil import iso, utcnow
from tests.unit.chatdata_helpers import conv, jsonl, many, run


def prepared(rows: list) -> dict[str, bytes]:
    """A dataset as preparation leaves it: train and test bytes."""
    result = run(jsonl(*rows), test_percent=30)
    return {"train": result.raw["train"], "test": result.raw["test"]}


def merge(members: list[dict[str, bytes]], percent: int = 30, **options) -> tuple[list, dict[str, list[dict]]]:
    merger = Merger(test_percent=percent, **options)
    out: dict[str, list[bytes]] = {"train": [], "test": []}
    counts = []
    for index, files in enumerate(members):
        splits = [(split, f"d{index}/{split}.jsonl", [files[split]]) for split in ("train", "test")]
        member, _ = merger.add_member(f"d{index}", splits, out["train"].append, out["test"].append)
        counts.append(member)
    rows = {split: [json.loads(line) for line in b"".join(parts).splitlines()] for split, parts in out.items()}
    return counts, rows


def digest_of_row(row: dict) -> bytes:
    tools = row.get("tools")
    return conversation_digest(orjson.dumps(row["messages"]), None if tools is None else orjson.dumps(tools))


# -- the per-row digest ------------------------------------------------------------------------------------------


def test_a_prepared_rows_digest_is_the_one_preparation_split_it_by() -> None:
    tricky = [
        conv('a prompt with ,"messages": inside', "and a \\ backslash"),
        {"prompt": 'x","messages":[1]', "prompt_id": "p", "messages": conv("u", "v")["messages"]},
        conv("unicode café 日本語 🚀", "ok"),
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "tools": {"x": 1.5}}]},
                {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                {"role": "assistant", "content": "It is sunny."},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"n": 1e-7}}}],
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}]},
    ]
    result = run(jsonl(*tricky, *many(40)), test_percent=30)
    for split in ("train", "test"):
        for line in result.raw[split].splitlines():
            digest = prepared_row_digest(line)
            assert digest == digest_of_row(json.loads(line))
            assert split_of(digest, 30) == split  # the very digest that put the row in this file
    assert result.report["train"] + result.report["test"] == len(tricky) + 40
    assert result.report["rows_with_tools"] == 1  # the only row with top-level tools


def test_a_file_without_tools_is_read_without_looking_for_them() -> None:
    result = run(jsonl(conv('nested ],"tools": text', "ok"), *many(30)), test_percent=30)
    assert result.report["rows_with_tools"] == 0
    for line in result.raw["train"].splitlines() + result.raw["test"].splitlines():
        assert (
            row_digest(line, 0, len(line), tools=False) == prepared_row_digest(line) == digest_of_row(json.loads(line))
        )


def test_a_line_preparation_cannot_have_written_is_named() -> None:
    with pytest.raises(PreparedRowError, match="messages"):
        prepared_row_digest(b'{"text": "hello"}')


# -- merging -----------------------------------------------------------------------------------------------------


def test_a_conversation_present_in_two_files_counts_once_and_the_first_wins() -> None:
    shared_rows = many(30, "shared")
    first = prepared([*shared_rows, *many(20, "first")])
    renamed = [{**row, "prompt_id": "second-file"} for row in shared_rows]  # same conversation, other prompt_id
    second = prepared([*renamed, *many(25, "second")])
    counts, rows = merge([first, second])
    everything = rows["train"] + rows["test"]
    assert len(everything) == 30 + 20 + 25
    assert len({digest_of_row(row) for row in everything}) == len(everything)
    assert counts[0].duplicates == 0 and counts[1].duplicates == 30
    assert counts[0].train + counts[0].test == 50 and counts[1].train + counts[1].test == 25
    assert not any(row["prompt_id"] == "second-file" for row in everything)  # the older dataset's copy was kept


def test_a_conversations_split_is_the_same_in_every_corpus() -> None:
    a, b, c = (prepared(many(60, tag)) for tag in ("a", "b", "c"))
    overlap = prepared([*many(60, "b"), *many(60, "c")])
    corpora = [merge(members)[1] for members in ([a, b], [b, c], [overlap, a], [c, a, b])]
    split_by_digest: dict[bytes, str] = {}
    for corpus in corpora:
        for split, rows in corpus.items():
            for row in rows:
                assert split_by_digest.setdefault(digest_of_row(row), split) == split
    assert len(split_by_digest) == 180
    assert {"train", "test"} == set(split_by_digest.values())


def test_the_corpus_splits_by_the_current_percentage_and_counts_the_rows_that_moved() -> None:
    data = prepared(many(200))  # prepared with 30%
    counts, rows = merge([data], percent=10)
    assert counts[0].moved > 0 and counts[0].moved == sum(
        1 for row in rows["train"] if split_of(digest_of_row(row), 30) == "test"
    )
    assert all(split_of(digest_of_row(row), 10) == "test" for row in rows["test"])


def test_the_train_row_cap_stops_train_rows_only() -> None:
    data = prepared(many(100))
    counts, rows = merge([data], max_train_rows=20)
    assert len(rows["train"]) == counts[0].train == 20
    assert counts[0].over_cap == len(data["train"].splitlines()) - 20
    assert counts[0].test == len(rows["test"]) == len(data["test"].splitlines())


def test_a_resumed_merge_from_the_digest_checkpoint_matches_one_pass() -> None:
    a, b = prepared(many(50, "a")), prepared([*many(50, "a"), *many(10, "b")])
    _, whole = merge([a, b])
    first = Merger(test_percent=30)
    out_a: list[bytes] = []
    _, checkpoint = first.add_member(
        "a", [("train", "a", [a["train"]]), ("test", "a", [a["test"]])], out_a.append, out_a.append
    )
    seen: set[bytes] = set()
    load_digests(seen, checkpoint)
    second = Merger(test_percent=30, seen=seen)
    out_b: list[bytes] = []
    counts, _ = second.add_member(
        "b", [("train", "b", [b["train"]]), ("test", "b", [b["test"]])], out_b.append, out_b.append
    )
    assert counts.duplicates == 50 and counts.train + counts.test == 10
    resumed = [json.loads(line) for line in b"".join(out_a + out_b).splitlines()]
    key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, whole["train"] + whole["test"]))


def test_a_damaged_member_file_names_the_file_and_line() -> None:
    merger = Merger(test_percent=10)
    damaged = [("train", "datasets/m/d1/train.jsonl", [jsonl(conv()).replace(b"messages", b"m"), b""])]
    with pytest.raises(CorpusDataError, match=r"datasets/m/d1/train.jsonl line 1"):
        merger.add_member("d1", damaged, [].append, [].append)


# -- choosing members --------------------------------------------------------------------------------------------


def record(dataset_id: str, days_ago: float, train: int = 100, **fields) -> DatasetRecord:
    return DatasetRecord(
        model="bot",
        dataset_id=dataset_id,
        state=fields.pop("state", "prepared"),
        prefix=f"datasets/bot/{dataset_id}/",
        prepared_at=iso(utcnow() - timedelta(days=days_ago)),
        report={"train": train, "test": 10},
        **fields,
    )


def test_members_are_every_prepared_dataset_not_excluded_oldest_first() -> None:
    records = [
        record("c", 1),
        record("a", 3),
        record("b", 2, excluded=True),
        record("r", 0, state="rejected"),
        record("p", 0, state="preparing"),
    ]
    selection = select("bot", records, CorpusOptions(), utcnow())
    assert [m.dataset_id for m in selection.members] == ["a", "c"]
    assert selection.left_out == {"b": "excluded"}


def test_age_and_row_cap_keep_the_newest_datasets() -> None:
    records = [record("old", 40), record("a", 3, train=50), record("b", 2, train=50), record("c", 1, train=50)]
    options = CorpusOptions(max_age_days=30, max_train_rows=120)
    selection = select("bot", records, options, utcnow())
    assert [m.dataset_id for m in selection.members] == ["b", "c"]
    assert "CORPUS_MAX_AGE_DAYS" in selection.left_out["old"] and "CORPUS_MAX_TRAIN_ROWS" in selection.left_out["a"]
    alone = select("bot", [record("big", 1, train=500)], options, utcnow())
    assert [m.dataset_id for m in alone.members] == ["big"]  # the newest is always kept (cut while merging)


def test_latest_mode_takes_the_newest_dataset_alone() -> None:
    records = [record("a", 3), record("b", 2), record("c", 1, excluded=True)]
    selection = select("bot", records, CorpusOptions(mode="latest"), utcnow())
    assert [m.dataset_id for m in selection.members] == ["b"]
    assert "CORPUS_MODE=latest" in selection.left_out["a"]


def test_the_corpus_id_names_the_members_and_the_settings() -> None:
    options = CorpusOptions()
    assert corpus_id("bot", ["a", "b"], options) == corpus_id("bot", ["b", "a"], options)
    assert corpus_id("bot", ["a", "b"], options) != corpus_id("bot", ["a"], options)
    assert corpus_id("bot", ["a"], options) != corpus_id("bot", ["a"], CorpusOptions(test_percent=20))
    assert corpus_id("bot", ["a"], options) != corpus_id("other", ["a"], options)
    with pytest.raises(ValueError, match="CORPUS_MODE"):
        CorpusOptions(mode="everything")
