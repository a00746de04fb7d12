"""The helper thread that overlaps writing with parsing: order kept, errors surface, no thread left."""

from __future__ import annotations

import threading

import orjson
import pytest

from shared.chatdata import PrepareOptions, prepare
from shared.chatdata.overlap import MIN_OVERLAP_BYTES, Overlap


def test_calls_run_in_order_large_on_the_helper_and_small_inline() -> None:
    seen: list[tuple[bytes, bool]] = []

    def record(data: bytes) -> None:
        seen.append((data[:1], threading.current_thread() is threading.main_thread()))

    work = Overlap(depth=2)
    big = MIN_OVERLAP_BYTES
    for piece in (b"a" * big, b"b" * big, b"c", b"d" * big):
        work.submit(record, piece)
    work.close()
    assert [first for first, _ in seen] == [b"a", b"b", b"c", b"d"]
    assert [inline for _, inline in seen] == [False, False, True, False]


def test_an_error_on_the_helper_is_raised_on_the_caller_and_later_calls_are_skipped() -> None:
    calls: list[bytes] = []

    def fail_first(data: bytes) -> None:
        calls.append(data[:1])
        if len(calls) == 1:
            raise OSError("disk full")

    work = Overlap(depth=1)
    work.submit(fail_first, b"x" * MIN_OVERLAP_BYTES)
    with pytest.raises(OSError, match="disk full"):
        work.submit(fail_first, b"y" * MIN_OVERLAP_BYTES)  # raises here, or is queued, skipped, and close raises
        work.close()
    work.close()  # the helper thread ends either way
    assert calls == [b"x"]


def test_prepare_raises_a_writer_error_and_leaves_no_thread_behind() -> None:
    lines = b"".join(
        orjson.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a" * 3000}]})
        + b"\n"
        for i in range(2000)  # 6 MB of distinct conversations: several blocks for the writing thread
    )
    before = threading.active_count()

    def broken(data: bytes) -> None:
        raise OSError("the disk is full")

    with pytest.raises(OSError, match="the disk is full"):
        prepare([lines], broken, broken, broken, PrepareOptions())
    assert threading.active_count() == before
