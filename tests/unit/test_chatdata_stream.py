"""The stream and the whole file: gzip/BOM/CRLF, chunk boundaries, split determinism, whole-file verdicts, report
fields, and the invariant train + test + rejected == total_lines on a large generated file with bad lines."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.chatdata import content_id, split_of
from tests.conftest import SHARED_DIR
from tests.unit.chatdata_helpers import assert_invariant, conv, jsonl, many, run

MAKE_CHAT = SHARED_DIR / "bench" / "make_chat_jsonl.py"


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_gzip_bom_and_crlf_give_the_same_dataset_as_plain_lf():
    rows = many(30)
    plain = jsonl(*rows)
    crlf_bom = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")
    baseline = run(plain)
    for data, compression, bom, endings in (
        (gzip.compress(plain), "gzip", False, "LF"),
        (crlf_bom, "none", True, "CRLF"),
        (gzip.compress(crlf_bom), "gzip", True, "CRLF"),
    ):
        result = run(data)
        assert result.report["compression"] == compression
        assert result.report["bom"] is bom
        assert result.report["line_endings"] == endings
        assert result.raw["train"] == baseline.raw["train"]
        assert result.raw["test"] == baseline.raw["test"]
        assert result.report["rejected"] == 0
    # the id names the decompressed content: gzip or not, one dataset
    assert run(gzip.compress(plain)).report["dataset_id"] == baseline.report["dataset_id"]
    assert content_id([gzip.compress(plain)]).dataset_id == baseline.report["dataset_id"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_any_chunking_gives_the_same_result(size):
    data = b"\xef\xbb\xbf" + jsonl(*many(12), b"{bad", conv("q0 question 0", "x")).replace(b"\n", b"\r\n")
    whole = run(data)
    split = run(chunked(data, size))
    assert split.raw == whole.raw
    assert split.report["dataset_id"] == whole.report["dataset_id"]
    assert split.report["bom"] and split.report["line_endings"] == "CRLF"
    gz = run(chunked(gzip.compress(data), size))
    assert gz.raw == whole.raw


def test_files_concatenated_with_their_boms_are_read_whole():
    first, second = jsonl(*many(5, "a")), jsonl(*many(5, "b"))
    result = run(b"\xef\xbb\xbf" + first + b"\xef\xbb\xbf" + second)
    assert result.report["total_lines"] == 10 and result.report["rejected"] == 0


def test_multi_member_gzip_and_a_last_line_without_newline():
    first, second = jsonl(*many(5, "a")), jsonl(*many(5, "b"))[:-1]
    result = run(gzip.compress(first) + gzip.compress(second))
    assert result.report["total_lines"] == 10
    assert result.report["rejected"] == 0


def test_blank_lines_are_counted_apart_and_line_numbers_stay_physical():
    data = jsonl(conv("a", "b")) + b"\n   \n\r\n" + b"{oops\n"
    result = run(data)
    assert result.report["blank_lines"] == 3
    assert result.report["total_lines"] == 2
    assert result.rejected[0]["line"] == 5
    assert_invariant(result.report)


def test_an_over_long_line_across_chunks_is_skipped_in_bounded_memory():
    long_line = json.dumps(conv("x" * 50_000, "y")).encode()
    data = jsonl(conv("a", "b"), long_line, conv("c", "d"))
    result = run(chunked(data, 4096), max_line_bytes=8192)
    assert [r["reason"] for r in result.rejected] == ["line_too_long"]
    assert result.rejected[0]["line"] == 2
    assert result.rejected[0]["raw_bytes"] == len(long_line)
    assert result.report["total_lines"] == 3
    assert_invariant(result.report)
    unterminated = run(chunked(jsonl(conv("a", "b")) + long_line, 4096), max_line_bytes=8192)
    assert unterminated.report["reasons"] == {"line_too_long": 1}


def test_corrupt_or_truncated_gzip_rejects_the_file_with_one_sentence_and_keeps_what_was_read():
    data = gzip.compress(jsonl(*many(50)))
    truncated = run(data[: len(data) // 2])
    assert truncated.report["accepted"] is False
    assert truncated.report["rejection"]["code"] == "unreadable"
    assert "truncated" in truncated.report["rejection"]["message"]
    assert_invariant(truncated.report)
    corrupt = run(data[:20] + b"\x00garbage" * 40 + data[20:])
    assert corrupt.report["rejection"]["code"] == "unreadable"
    assert "corrupt" in corrupt.report["rejection"]["message"]


def test_split_is_deterministic_by_conversation_whatever_the_file():
    rows = many(400)
    one = run(jsonl(*rows), test_percent=20)
    other = run(jsonl(*reversed(rows[100:]), {"junk": True}, *rows[:50]), test_percent=20)
    test_prompts = {r["prompt"] for r in one.test}
    assert 40 <= len(test_prompts) <= 120  # ~20% of 400
    for row in other.test:
        assert row["prompt"] in test_prompts
    for row in other.train:
        assert row["prompt"] not in test_prompts
    assert split_of(b"\x00" * 16, 10) == "test" and split_of(b"\xff" * 16, 10) == "train"


def test_too_few_train_rows_or_no_test_row_rejects_the_dataset_as_a_whole():
    small = run(jsonl(*many(5), b"{bad"), min_train_rows=10, min_test_rows=1, test_percent=0)
    assert small.report["accepted"] is False
    assert small.report["rejection"]["code"] == "too_few_train_rows"
    assert "at least 10" in small.report["rejection"]["message"]
    assert len(small.train) == 5  # nothing lost: the rows are still written
    no_test = run(jsonl(*many(20)), min_train_rows=10, min_test_rows=1, test_percent=0)
    assert no_test.report["rejection"]["code"] == "too_few_test_rows"
    assert "TEST_SPLIT_PERCENT" in no_test.report["rejection"]["message"]
    ok = run(jsonl(*many(200)), min_train_rows=10, min_test_rows=1, test_percent=10)
    assert ok.report["accepted"] is True and ok.report["rejection"] is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"PAR1\x15\x04\x15\x80\x01" + b"\x00" * 200 + b"\n\x01\x02\n", "Parquet"),
        (b"prompt,completion\nhello,hi\nbye,ciao\n", "CSV with header 'prompt,completion'"),
        (b"prompt\tcompletion\nhello\thi\n", "TSV"),
        (b'[\n  {"messages": []},\n  {"messages": []}\n]\n', "one JSON array"),
        (b'{\n  "messages": [\n    {"role": "user"}\n  ]\n}\n', "pretty-printed"),
        (bytes(range(256)) * 8, "binary"),
        ("hello\n".encode("utf-16"), "UTF-16"),
        (b"just some notes\nmore notes\n", "plain text"),
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP"),
    ],
)
def test_a_file_that_is_not_jsonl_is_named_in_one_sentence(data, fragment):
    result = run(data)
    assert result.report["accepted"] is False
    assert result.report["rejection"]["code"] == "not_jsonl"
    message = result.report["rejection"]["message"]
    assert fragment in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert_invariant(result.report)


def test_not_jsonl_inside_gzip_is_recognised():
    result = run(gzip.compress(b"a,b,c\n1,2,3\n4,5,6\n"))
    assert result.report["rejection"]["code"] == "not_jsonl"
    assert "CSV" in result.report["rejection"]["message"]


def test_empty_file_is_rejected():
    for data in (b"", b"\n\n  \n"):
        result = run(data)
        assert result.report["rejection"]["code"] == "empty_file"
        assert result.report["total_lines"] == 0


def test_report_has_every_field_with_token_estimates():
    rows = [conv("q" * 40, "a" * (400 * i)) for i in range(1, 21)]
    result = run(jsonl(*rows, b"{bad"), max_seq_length=1000, test_percent=10, epochs=2)
    report = result.report
    for key in (
        "dataset_id",
        "format",
        "total_lines",
        "blank_lines",
        "train",
        "test",
        "rejected",
        "reasons",
        "warnings",
        "tokens_per_example",
        "over_max_seq_length",
        "messages_per_example",
        "estimated_training_tokens",
        "bytes",
        "seconds",
    ):
        assert key in report, key
    tokens = report["tokens_per_example"]
    # 40 + 400*i characters -> ceil(/4) + 2 messages * 4 + 2
    expected = sorted((40 + 400 * i + 3) // 4 + 10 for i in range(1, 21))
    assert tokens["min"] == expected[0] and tokens["max"] == expected[-1]
    assert tokens["p50"] == expected[9] and tokens["p5"] == expected[0] and tokens["p95"] == expected[18]
    assert report["over_max_seq_length"] == sum(1 for t in expected if t > 1000)
    assert report["messages_per_example"] == {"min": 2, "p50": 2, "max": 2, "mean": 2.0}
    train_tokens = sum(
        (len(r["messages"][0]["content"]) + len(r["messages"][1]["content"]) + 3) // 4 + 10 for r in result.train
    )
    assert report["train_tokens"] == train_tokens
    assert report["estimated_training_tokens"] == 2 * train_tokens
    assert report["bytes"] == len(jsonl(*rows, b"{bad"))
    assert report["first_rejections"] == [
        {"line": 21, "reason": "invalid_json", "detail": result.rejected[0]["detail"]}
    ]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "big.jsonl"
    subprocess.run(
        [
            sys.executable,
            str(MAKE_CHAT),
            "--mb",
            "3",
            "--bad-percent",
            "5",
            "--dup-percent",
            "3",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_invariant_on_a_large_generated_file_with_bad_and_duplicate_lines(generated):
    data = generated.read_bytes()
    result = run(chunked(data, 65536), min_train_rows=10, min_test_rows=1)
    report = result.report
    assert_invariant(report)
    assert report["total_lines"] == data.count(b"\n")
    assert report["accepted"] is True
    assert report["reasons"]["duplicate"] > 0 and report["reasons"]["invalid_json"] > 0
    assert sum(report["reasons"].values()) == report["rejected"] == len(result.rejected)
    assert len(result.train) == report["train"] and len(result.test) == report["test"]
    assert 0.05 < report["test"] / (report["train"] + report["test"]) < 0.15
    # every input line is accounted for exactly once: kept rows + rejected line numbers
    rejected_lines = {r["line"] for r in result.rejected}
    assert len(rejected_lines) == report["rejected"]
    gz = run([gzip.compress(data)], min_train_rows=10, min_test_rows=1)
    assert gz.raw == result.raw and gz.report["dataset_id"] == report["dataset_id"]
