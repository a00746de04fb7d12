"""Golden output: a bench-like file with faulty, duplicate and edge-case lines gives byte-identical train, test and
rejected files and the same report as when the fixture was recorded.

Why: the preparation is tuned for speed (fast paths beside the full rule check), and every output byte, reason
code, detail, warning and report field is an API. The fixture was recorded with the straightforward implementation
before any fast path existed; a speed-up must not move a byte. Re-record it only when a rule changes on purpose:

    .venv/bin/python -m tests.unit.test_chatdata_golden --record
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from shared.chatdata import REASONS, WARNINGS, PrepareOptions, prepare
from tests.conftest import ROOT, SHARED_DIR

MAKE_CHAT = SHARED_DIR / "bench" / "make_chat_jsonl.py"
FIXTURE = ROOT / "tests" / "fixtures" / "chatdata_golden.json"
TIMING_FIELDS = ("seconds", "mb_per_second")
# (name, options, how the input is fed: chunk size and gzip)
RUNS: list[tuple[str, dict[str, Any], int, bool]] = [
    ("defaults", {}, 1 << 22, False),
    ("small-limits", {"max_line_bytes": 12_000, "max_seq_length": 512, "test_percent": 25}, 4093, False),
    ("gzip-all-test", {"test_percent": 100, "min_train_rows": 0}, 65_536, True),
]

U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def edge_lines() -> list[bytes]:
    """Lines where a fast path could differ from the full check: escapes, odd types, odd keys, numbers, nesting."""
    tool_call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    lines = [
        # escapes and Unicode that re-encoding must reproduce exactly
        rb'{"messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude80 \/ \t tab \u0000 nul \u001f \u007f"},'
        rb'{"role":"assistant","content":"line\nbreak \"quoted\" back\\slash \u2028 \u2029"}]}',
        '{"messages":[{"role":"user","content":"raw é 日本語 🚀 \x7f"},{"role":"assistant","content":"ok"}]}'.encode(),
        rb'{"messages":[{"role":"user","content":"lone \udc00 low"},{"role":"assistant","content":"x"}]}',
        rb'{"messages":[{"role":"user","content":"lone \ud800"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"user","content":"bad \xc0\xaf overlong"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"user","content":"surrogate \xed\xa0\x80 bytes"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"user","content":"cut \xe6\x97"},{"role":"assistant","content":"x"}]}',
        b'{"mess\xffages":[]}',
        b'{"messages":[{"role":"user","content":"nul \x00 raw"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"user","content":"tab \t raw"},{"role":"assistant","content":"x"}]}',
        # JSON syntax around a valid object
        b'  \t{"messages":[{"role":"user","content":"padded"},{"role":"assistant","content":"x"}]}  \t',
        b'{"messages":[{"role":"user","content":"trailing"},{"role":"assistant","content":"x"}]} x',
        b'{"messages":[{"role":"user","content":"trailing comma"},{"role":"assistant","content":"x"},]}',
        b'{"messages":[{"role":"user","content":"two"},{"role":"assistant","content":"x"}]}{"a":1}',
        b"{'messages': []}",
        b'{"messages":[{"role":"user","content":"nan"},{"role":"assistant","content":"x"}],"tools":NaN}',
        b'{"messages":[{"role":"user","content":"inf"},{"role":"assistant","content":"x"}],"tools":[Infinity]}',
        b"\xef\xbb\xbf" + _dumps({"messages": [{"role": "user", "content": "bom inside"}, A]}),
        b"\xef\xbb\xbf{broken after a bom",
        # keys: order, escapes, duplicates, unknown ones
        b'{"messages":[{"content":"content first","role":"user"},{"content":"x","role":"assistant"}]}',
        rb'{"mess\u0061ges":[{"r\u006fle":"user","content":"escaped keys"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"user","content":"dup key 1"},{"role":"assistant","content":"x"}],'
        b'"messages":[{"role":"user","content":"dup key 2"},{"role":"assistant","content":"y"}]}',
        b'{"messages":[{"role":"user","content":"a","content":"dup content"},{"role":"assistant","content":"x"}]}',
        b'{"messages":[{"role":"system","role":"user","content":"dup role"},{"role":"assistant","content":"x"}]}',
        _dumps({"messages": [U, {"role": "assistant", "content": "b", "mood": "x"}], "source": "crm"}),
        _dumps({"messages": [{"role": "user", "content": "n", "name": "bob"}, A], "prompt": "p"}),
        _dumps({"messages": [{"role": "user", "content": "w", "weight": 0}, {**A, "weight": 1.0}]}),
        _dumps({"messages": [{"role": "user", "content": "w", "weight": -0.0}, {**A, "weight": True}]}),
        _dumps({"messages": [{"role": "user", "content": "w", "weight": None}, A]}),
        _dumps({"messages": [{"role": "user", "content": "w2", "weight": 1}, {**A, "weight": 0.5}]}),
        # prompt and prompt_id in every form
        _dumps({"prompt": None, "prompt_id": None, "messages": [{"role": "user", "content": "nulls"}, A]}),
        _dumps({"prompt": "", "prompt_id": "id", "messages": [{"role": "user", "content": "empty p"}, A]}),
        _dumps({"prompt": 5, "prompt_id": 7, "messages": [{"role": "user", "content": "numbers"}, A]}),
        _dumps({"prompt_id": "only-id", "messages": [{"role": "user", "content": "only id"}, A]}),
        _dumps({"prompt": "only prompt", "messages": [{"role": "user", "content": "only p"}, A]}),
        _dumps({"prompt": ["x"], "prompt_id": {"a": 1}, "messages": [{"role": "user", "content": "odd"}, A]}),
        _dumps({"messages": [{"role": "user", "content": "pid"}, A], "prompt_id": "🚀 id"}),
        # roles and contents
        _dumps({"messages": [{"role": "User", "content": "case"}, A]}),
        _dumps({"messages": [{"role": " user", "content": "space"}, A]}),
        _dumps({"messages": [{"role": 5, "content": "num"}, A]}),
        _dumps({"messages": [{"role": None, "content": "null"}, A]}),
        _dumps({"messages": [{"role": "x" * 80, "content": "long role"}, A]}),
        _dumps({"messages": [{"role": "user", "content": "\u00a0\u3000"}, A]}),
        _dumps({"messages": [{"role": "user", "content": "\u200b"}, A]}),
        _dumps({"messages": [{"role": "user", "content": ""}, A]}),
        _dumps({"messages": [{"role": "user", "content": ["parts"]}, A]}),
        _dumps({"messages": [{"role": "user", "content": {"type": "text"}}, A]}),
        _dumps({"messages": [{"role": "user", "content": None}, A]}),
        _dumps({"messages": [{"role": "user", "content": 1.5}, A]}),
        _dumps({"messages": [{"role": "user", "content": True}, A]}),
        _dumps({"messages": [{"role": "user", "content": "tools"}, tool_call, A], "tools": [{"type": "function"}]}),
        _dumps({"messages": [U, {"role": "assistant", "content": None, "tool_calls": []}, A]}),
        _dumps({"messages": [U, {"role": "assistant", "content": "  ", "tool_calls": [{"id": 1}]}]}),
        _dumps({"messages": [U, {"role": "user", "content": None, "tool_calls": [{"id": 1}]}, A]}),
        _dumps({"messages": [U, {"role": "tool", "content": "42", "tool_call_id": "c"}, A]}),
        _dumps({"messages": [U, {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}, A]}),
        _dumps({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "sys first"}, A]}),
        _dumps({"messages": [{"role": "user", "content": "sys later"}, {"role": "system", "content": "s"}, A]}),
        _dumps({"messages": [{"role": "system", "content": "s"}, {"role": "system", "content": "s2"}, U, A]}),
        _dumps({"messages": [{"role": "user", "content": "trail"}, A, {"role": "user", "content": "bye"}]}),
        _dumps({"messages": [A, {"role": "user", "content": "trail no user"}]}),
        _dumps({"messages": [A, {"role": "tool", "content": "t"}]}),
        _dumps({"messages": [U, {"role": "tool", "content": "no assistant"}]}),
        _dumps({"messages": [{"role": "user", "content": "uu"}, {"role": "user", "content": "uu2"}, A]}),
        _dumps({"messages": [{"role": "user", "content": "aa"}, A, A]}),
        _dumps({"messages": [{"role": "user", "content": "one"}]}),
        _dumps({"messages": [U, A, 5]}),
        _dumps({"messages": [U, A, {}]}),
        _dumps({"messages": [U, A, []]}),
        _dumps({"messages": [U, A, None]}),
        _dumps({"messages": [{"role": "user", "content": "many"}, *([A, U] * 40), A]}),
        # other shapes and not-objects
        _dumps({"prompt": "2+2?", "completion": "4"}),
        _dumps({"prompt": "2+2?", "completion": "4", "extra": 1}),
        _dumps({"prompt": "pc", "completion": "   "}),
        _dumps({"prompt": None, "completion": "4"}),
        _dumps({"completion": "only"}),
        _dumps({"messages": [{"role": "user", "content": "both"}, A], "completion": "ignored"}),
        _dumps({"messages": None}),
        _dumps({"messages": {}}),
        _dumps({"messages": 1}),
        _dumps({"messages": []}),
        b"{}",
        _dumps({"z": 1, "y": 2, "x": 3, "w": 4, "v": 5, "u": 6, "t": 7, "s": 8, "r": 9}),
        b"[]",
        b"null",
        b"true",
        b"12",
        b'"text"',
        b"-",
        b"}",
        # values inside tools are re-encoded: numbers, nesting, big integers
        b'{"messages":[{"role":"user","content":"numbers"},{"role":"assistant","content":"x"}],'
        b'"tools":[1E2,1.0e+2,0.1,-0.0,1e-7,123456789012345678,18446744073709551615,1.7976931348623157e308]}',
        b'{"messages":[{"role":"user","content":"huge int"},{"role":"assistant","content":"x"}],'
        b'"tools":[123456789012345678901234567890]}',
        b'{"messages":[{"role":"user","content":"neg huge"},{"role":"assistant","content":"x"}],'
        b'"tools":[-9223372036854775809]}',
        b'{"messages":[{"role":"user","content":"overflow"},{"role":"assistant","content":"x"}],"tools":[1e400]}',
        b'{"messages":[{"role":"user","content":"deep"},{"role":"assistant","content":"x"}],"tools":'
        + b"[" * 200
        + b"]" * 200
        + b"}",
        b'{"messages":[{"role":"user","content":"too deep"},{"role":"assistant","content":"x"}],"tools":'
        + b"[" * 1100
        + b"]" * 1100
        + b"}",
        b'{"messages":[{"role":"user","content":"tools null"},{"role":"assistant","content":"x"}],"tools":null}',
        b'{"messages":[{"role":"user","content":"tools obj"},{"role":"assistant","content":"x"}],'
        b'"tools":{"b":1,"a":[true,false,null,"s"]}}',
        # normalised duplicates: same conversation, different bytes
        b'{ "messages" : [ {"role":"user","content":"same"} , {"role":"assistant","content":"conv"} ] }',
        b'{"messages":[{"content":"same","role":"user"},{"content":"conv","role":"assistant","x":1}],"y":2}',
        b'{"prompt":"other","prompt_id":"pid","messages":[{"role":"user","content":"same"},'
        b'{"role":"assistant","content":"conv"}]}',
        b'{"prompt":"same","completion":"conv"}',
        # long lines: raw cut in rejected, and over the line limit in the small-limits run
        _dumps({"messages": "z" * 9000}),
        _dumps({"messages": [{"role": "user", "content": "long " * 3000}, A]}),
        b'{"messages": ["' + "é".encode() * 3000 + b'"]}',
    ]
    return lines


def golden_input(workdir: Path) -> bytes:
    """Edge lines, a bench-like generated file (5% faulty, 3% duplicate lines), the edge lines again with CRLF
    endings (now duplicates, or rejected again), and blank lines between."""
    generated = workdir / "bench.jsonl"
    args = ["--mb", "2", "--bad-percent", "5", "--dup-percent", "3", "--seed", "17", "--out", str(generated)]
    subprocess.run(
        [sys.executable, str(MAKE_CHAT), *args],
        check=True,
        capture_output=True,
    )
    edges = edge_lines()
    return (
        b"\n".join(edges)
        + b"\n\n   \n"
        + generated.read_bytes()
        + b"\r\n".join(edges)
        + b"\r\n\t\n"
        + edges[0]  # a last line without a line end
    )


def outcome(data: bytes, options: dict[str, Any], chunk: int, compress: bool, **kwargs: Any) -> dict[str, Any]:
    """What one run produced: the SHA-256 of each output and the report without its timings."""
    outs: dict[str, list[bytes]] = {"train": [], "test": [], "rejected": []}
    feed = gzip.compress(data, mtime=0) if compress else data
    chunks = [feed[i : i + chunk] for i in range(0, len(feed), chunk)]
    report = prepare(
        chunks, outs["train"].append, outs["test"].append, outs["rejected"].append, PrepareOptions(**options), **kwargs
    )
    for field in TIMING_FIELDS:
        report.pop(field)
    sums = {f"{name}_sha256": hashlib.sha256(b"".join(parts)).hexdigest() for name, parts in outs.items()}
    return {**sums, "report": report}


def record() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = golden_input(Path(tmp))
    runs = {name: outcome(data, options, chunk, compress) for name, options, chunk, compress in RUNS}
    return {"input_sha256": hashlib.sha256(data).hexdigest(), "input_bytes": len(data), "runs": runs}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> bytes:
    return golden_input(tmp_path_factory.mktemp("golden"))


def test_the_golden_input_is_the_recorded_one(data):
    expected = json.loads(FIXTURE.read_text())
    assert hashlib.sha256(data).hexdigest() == expected["input_sha256"], (
        f"{MAKE_CHAT} or edge_lines() now makes other input; re-record the fixture with the unchanged preparation"
    )


def test_the_golden_runs_cover_every_reason_and_warning():
    runs = json.loads(FIXTURE.read_text())["runs"].values()
    assert set(REASONS) == {code for run in runs for code in run["report"]["reasons"]}
    assert set(WARNINGS) == {code for run in runs for code in run["report"]["warnings"]}


@pytest.mark.parametrize(("name", "options", "chunk", "compress"), RUNS, ids=[run[0] for run in RUNS])
def test_outputs_and_report_are_byte_identical_to_the_golden_run(data, name, options, chunk, compress):
    expected = json.loads(FIXTURE.read_text())["runs"][name]
    got = json.loads(json.dumps(outcome(data, options, chunk, compress)))  # tuples -> lists, as in the fixture
    assert got["report"] == expected["report"]
    for output in ("train", "test", "rejected"):
        assert got[f"{output}_sha256"] == expected[f"{output}_sha256"], f"{output}.jsonl differs ({name})"


def test_a_known_content_hash_is_used_instead_of_hashing_again(data):
    """Ingest's second pass passes the hash of its first (same blob version): it names the dataset, unchecked."""
    expected = json.loads(FIXTURE.read_text())["runs"]["defaults"]
    given = "ab" * 32
    got = json.loads(json.dumps(outcome(data, {}, 1 << 22, False, content_sha256=given, write_beside=False)))
    assert got["report"].pop("content_sha256") == given and got["report"].pop("dataset_id") == given[:16]
    for field in ("content_sha256", "dataset_id"):
        expected["report"].pop(field)
    assert got == expected


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit(__doc__)
    FIXTURE.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {FIXTURE}")
