"""Helpers for the chat data tests: run a preparation in memory and read back its outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.chatdata import PrepareOptions, prepare


@dataclass
class Prepared:
    report: dict[str, Any]
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    raw: dict[str, bytes]

    def reason_of(self, line: int) -> str:
        return next(r["reason"] for r in self.rejected if r["line"] == line)


def run(data: bytes | list[bytes], **options: Any) -> Prepared:
    """Prepare ``data`` (one bytes, or a list of chunks) with small-dataset-friendly defaults."""
    options.setdefault("min_train_rows", 1)
    options.setdefault("min_test_rows", 0)
    outs: dict[str, list[bytes]] = {"train": [], "test": [], "rejected": []}
    chunks = data if isinstance(data, list) else [data]
    report = prepare(
        chunks, outs["train"].append, outs["test"].append, outs["rejected"].append, PrepareOptions(**options)
    )
    raw = {name: b"".join(parts) for name, parts in outs.items()}
    rows = {name: [json.loads(line) for line in blob.splitlines()] for name, blob in raw.items()}
    return Prepared(report, rows["train"], rows["test"], rows["rejected"], raw)


def conv(user: str = "hello", assistant: str = "hi there", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], **extra}


def jsonl(*rows: Any) -> bytes:
    return b"".join((row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows)


def many(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    return [conv(f"{prefix} question {i}", f"answer number {i}") for i in range(n)]


def assert_invariant(report: dict[str, Any]) -> None:
    assert report["train"] + report["test"] + report["rejected"] == report["total_lines"]
