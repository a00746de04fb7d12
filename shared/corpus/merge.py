"""The corpus's hot loop: prepared rows of one member after another -> corpus train/test, deduplicated and split.

Why it knows nothing about blobs: the same loop runs blob to blob in the app, file to file in the benchmark and
in memory in tests (writers are plain ``write(bytes)`` callables, members plain iterators of byte chunks). Memory
is constant apart from the set of digests already in the corpus (16 bytes per kept row, plus the set's
overhead): lines are sliced out of each chunk, their digest taken from the messages JSON without a parse
(``chatdata.prepared``), and output leaves in ~1 MiB pieces written beside the loop (``chatdata``'s writer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from shared.chatdata.overlap import Overlap
from shared.chatdata.prepare import WRITES_IN_FLIGHT, Writer
from shared.chatdata.prepare import _Buffered as Buffered
from shared.chatdata.prepared import PreparedRowError, prepared_row_digest
from shared.chatdata.reader import StreamInfo, TooLong, iter_lines
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
    ) -> tuple[MemberCounts, bytes]:
        """Merge one member's splits (``(split, source name, chunks)``) into the writers; returns its counts and
        the digests of the rows it added, in order (16 bytes each: the checkpoint a later invocation resumes
        from)."""
        counts = MemberCounts(dataset_id)
        added = bytearray()
        writing = Overlap(WRITES_IN_FLIGHT)
        outputs = {"train": Buffered(write_train, writing), "test": Buffered(write_test, writing)}
        try:
            for split, source, chunks in splits:
                self._add_split(split, source, chunks, counts, added, outputs)
            for out in outputs.values():
                out.flush()
        finally:
            writing.close()  # every piece written (or the writer's error raised) before the counts are trusted
        counts.train, counts.test = outputs["train"].count, outputs["test"].count
        return counts, bytes(added)

    def _add_split(
        self,
        split: str,
        source: str,
        chunks: Iterable[bytes],
        counts: MemberCounts,
        added: bytearray,
        outputs: dict[str, Buffered],
    ) -> None:
        seen, percent, cap = self.seen, self.test_percent, self.max_train_rows
        train, test = outputs["train"], outputs["test"]
        digest_of = prepared_row_digest
        line_no = 0
        for raw in iter_lines(chunks, StreamInfo(), MAX_ROW_BYTES):
            line_no += 1
            if type(raw) is TooLong:
                raise CorpusDataError(f"{source} line {line_no}: {raw.length} bytes, not a prepared row")
            if not raw:
                continue
            try:
                digest = digest_of(raw)
            except PreparedRowError as exc:
                raise CorpusDataError(f"{source} line {line_no}: {exc}") from None
            if digest in seen:
                counts.duplicates += 1
                continue
            to_test = int.from_bytes(digest[:8], "big") % 100 < percent  # chatdata.split_of, inlined: hot path
            if not to_test and cap and self.train_rows >= cap:
                counts.over_cap += 1
                continue
            seen.add(digest)
            added += digest
            if to_test != (split == "test"):
                counts.moved += 1
            if to_test:
                test.add(raw + b"\n")
            else:
                train.add(raw + b"\n")
                self.train_rows += 1


def load_digests(seen: set[bytes], data: bytes) -> None:
    """Add a checkpoint's digests (``add_member``'s second result) to ``seen``."""
    if len(data) % DIGEST_BYTES:
        raise CorpusDataError(f"a digest checkpoint of {len(data)} bytes is not a whole number of digests")
    seen.update(data[i : i + DIGEST_BYTES] for i in range(0, len(data), DIGEST_BYTES))


__all__ = ["DIGEST_BYTES", "SPLITS", "CorpusDataError", "MemberCounts", "Merger", "load_digests"]
