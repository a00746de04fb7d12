"""The corpus's hot loop: prepared rows of one member after another -> corpus train/test, deduplicated and split.

Why it knows nothing about blobs: the same loop runs blob to blob in the app, file to file in the benchmark and
in memory in tests (writers are plain ``write(bytes-like)`` callables, members plain iterators of byte chunks).
Memory is constant apart from the set of digests already in the corpus (16 bytes per kept row, plus the set's
overhead). Why it walks chunks instead of lines: nearly every row stays in the split its own file put it in, so
the output is the input minus a few rows; the loop hashes each row where it lies (``chatdata.prepared``, no
copy, no parse) and writes runs of consecutive kept rows as slices of the chunk, copying only rows that move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from shared.chatdata.overlap import Overlap
from shared.chatdata.prepare import FLUSH_BYTES, WRITES_IN_FLIGHT, Writer
from shared.chatdata.prepared import PreparedRowError, row_digest
from shared.errors import BadInput

DIGEST_BYTES = 16
MAX_ROW_BYTES = 64 * 1024 * 1024  # a prepared row is at most about twice MAX_LINE_BYTES; anything longer is damage
SPLITS = ("train", "test")


class CorpusDataError(BadInput, ValueError):
    """A member's prepared file cannot be read as one (edited by hand, truncated): names the file and line."""

    code = "invalid_corpus_member"


@dataclass
class MemberCounts:
    """What one member dataset added to the corpus (the manifest lists one per member).

    ``duplicates``: rows already in the corpus from an older member; ``over_cap``: train rows left out by
    CORPUS_MAX_TRAIN_ROWS; ``moved``: rows in the other split than in the dataset's own files (TEST_SPLIT_PERCENT
    changed since it was prepared: the corpus always splits by the current percentage).
    """

    dataset_id: str
    train: int = 0
    test: int = 0
    duplicates: int = 0
    over_cap: int = 0
    moved: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Merger:
    """Adds members one at a time to the corpus's two outputs; ``seen`` holds the digests already in it."""

    def __init__(
        self,
        *,
        test_percent: int,
        max_train_rows: int = 0,
        seen: set[bytes] | None = None,
        train_rows: int = 0,
    ):
        self.test_percent = test_percent
        self.max_train_rows = max_train_rows
        self.seen: set[bytes] = seen if seen is not None else set()
        self.train_rows = train_rows  # already in the corpus from earlier members (the cap counts them)

    def add_member(
        self,
        dataset_id: str,
        splits: Iterable[tuple[str, str, Iterable[bytes]]],
        write_train: Writer,
        write_test: Writer,
        *,
        tools: bool = True,
        write_beside: bool = True,
    ) -> tuple[MemberCounts, bytes]:
        """Merge one member's splits (``(split, source name, chunks)``) into the writers; returns its counts and
        the digests of the rows it added, in order (16 bytes each: the checkpoint a later invocation resumes
        from). ``tools=False``: the member's report says no row carries tools (nothing to look for).
        ``write_beside``: writes go to a helper thread (writers that wait on the network: blob blocks); False for
        local files, whose writes are quick."""
        counts = MemberCounts(dataset_id)
        added = bytearray()
        writing = Overlap(WRITES_IN_FLIGHT) if write_beside else None
        outputs = {"train": _Output(write_train, writing), "test": _Output(write_test, writing)}
        try:
            for split, source, chunks in splits:
                _Split(self, split, source, counts, added, outputs, tools).run(chunks)
            for out in outputs.values():
                out.flush()
        finally:
            if writing is not None:
                writing.close()  # every piece written (or the writer's error raised) before the counts are trusted
        counts.train, counts.test = outputs["train"].count, outputs["test"].count
        return counts, bytes(added)


class _Output:
    """One corpus file: pieces (slices of input chunks, or single rows) handed to its writer in >= 1 MiB writes,
    beside the loop (``Overlap``: in order, a bounded number in flight)."""

    __slots__ = ("count", "parts", "size", "writer", "writing")

    def __init__(self, writer: Writer, writing: Overlap | None):
        self.writer = writer
        self.writing = writing
        self.parts: list[Any] = []
        self.size = 0
        self.count = 0

    def add(self, piece: Any, rows: int) -> None:
        self.parts.append(piece)
        self.size += len(piece)
        self.count += rows
        if self.size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            parts, self.parts, self.size = self.parts, [], 0
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if self.writing is None:
                self.writer(data)
            else:
                self.writing.submit(self.writer, data)


class _Split:
    """One member file walked chunk by chunk: rows staying in the file's own split are passed on as runs."""

    def __init__(
        self,
        merger: Merger,
        split: str,
        source: str,
        counts: MemberCounts,
        added: bytearray,
        outputs: dict[str, _Output],
        tools: bool,
    ):
        self.merger = merger
        self.tools = tools
        self.source = source
        self.counts = counts
        self.added = added
        self.home = outputs[split]
        self.other = outputs["train" if split == "test" else "test"]
        self.home_is_test = split == "test"
        self.line_no = 0

    def run(self, chunks: Iterable[bytes]) -> None:
        carry = b""  # the start of a row that continues in the next chunk
        for chunk in chunks:
            start = 0
            if carry:
                cut = chunk.find(b"\n")
                if cut < 0:
                    carry += chunk
                    if len(carry) > MAX_ROW_BYTES:
                        raise CorpusDataError(f"{self.source} line {self.line_no + 1}: over {MAX_ROW_BYTES} bytes")
                    continue
                row = carry + chunk[: cut + 1]
                carry = b""
                self.rows(row, 0, len(row))
                start = cut + 1
            end = chunk.rfind(b"\n", start) + 1
            if end > start:
                self.rows(chunk, start, end)
            if end < len(chunk):
                carry = chunk[max(end, start) :]
        if carry:
            self.rows(carry + b"\n", 0, len(carry) + 1)

    def rows(self, buffer: bytes, start: int, stop: int) -> None:
        """Every row of ``buffer[start:stop]`` (whole rows, each ending in a newline). The hot loop: everything
        it touches per row is a local name."""
        merger, counts, added = self.merger, self.counts, self.added
        seen, percent, cap = merger.seen, merger.test_percent, merger.max_train_rows
        home, other, home_is_test = self.home, self.other, self.home_is_test
        view = memoryview(buffer)
        find, digest_of, tools, from_bytes = buffer.find, row_digest, self.tools, int.from_bytes
        seen_add, added_extend = seen.add, added.extend
        train_rows = merger.train_rows
        run_start, run_rows = start, 0  # the current run of rows kept in the home split
        pos = start
        line_no = self.line_no
        while pos < stop:
            newline = find(b"\n", pos, stop)
            line_no += 1
            keep = False
            if newline == pos:  # a blank line: nothing to keep
                to_test = home_is_test
            else:
                try:
                    digest = digest_of(buffer, pos, newline, tools)
                except PreparedRowError as exc:
                    raise CorpusDataError(f"{self.source} line {line_no}: {exc}") from None
                to_test = from_bytes(digest[:8], "big") % 100 < percent  # chatdata.split_of, inlined
                if not to_test and cap and train_rows >= cap:
                    counts.over_cap += 1
                else:
                    size = len(seen)
                    seen_add(digest)
                    if len(seen) > size:
                        keep = True
                        added_extend(digest)
                        if not to_test:
                            train_rows += 1
                    else:
                        counts.duplicates += 1
            if keep and to_test == home_is_test:
                run_rows += 1
            else:
                if run_rows:
                    home.add(view[run_start:pos], run_rows)
                if keep:  # the row belongs to the other split (TEST_SPLIT_PERCENT changed since preparation)
                    counts.moved += 1
                    other.add(bytes(view[pos : newline + 1]), 1)
                run_start, run_rows = newline + 1, 0
            pos = newline + 1
        self.line_no = line_no
        merger.train_rows = train_rows
        if run_rows:
            home.add(view[run_start:stop], run_rows)


def load_digests(seen: set[bytes], data: bytes) -> None:
    """Add a checkpoint's digests (``add_member``'s second result) to ``seen``."""
    if len(data) % DIGEST_BYTES:
        raise CorpusDataError(f"a digest checkpoint of {len(data)} bytes is not a whole number of digests")
    seen.update(data[i : i + DIGEST_BYTES] for i in range(0, len(data), DIGEST_BYTES))


__all__ = ["DIGEST_BYTES", "SPLITS", "CorpusDataError", "MemberCounts", "Merger", "load_digests"]
