"""The demo's sample dataset: reproducible from its script, and its report shows each kind of rejection."""

from __future__ import annotations

import importlib.util

from shared.chatdata import PrepareOptions, file_chunks, prepare
from tests.conftest import ROOT

SAMPLE = ROOT / "examples" / "support-bot.jsonl"


def test_the_committed_sample_is_what_make_sample_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "examples" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "sample.jsonl"
    assert module.main(["--out", str(out)]) == 0
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert SAMPLE.stat().st_size < 300_000


def test_the_sample_is_accepted_with_one_rejection_of_each_kind():
    rejected: list[bytes] = []
    with SAMPLE.open("rb") as handle:
        report = prepare(file_chunks(handle), lambda _: None, lambda _: None, rejected.append, PrepareOptions())
    assert report["accepted"] is True
    assert report["reasons"] == {
        "invalid_json": 1,
        "no_assistant_message": 1,
        "unknown_role": 1,
        "duplicate": 1,
        "empty_content": 1,
    }
    assert report["warnings"] == {"trailing_messages_dropped": 1}
    assert report["train"] >= 250 and report["test"] >= 10
