"""Run GIL-releasing work (writing output) on a helper thread while the main thread parses.

Why: writing a 1 MiB block to a file or a blob (a network round trip) releases the GIL, so it can run beside the
JSON parsing instead of after it. (The content's SHA-256 is not handed over: it costs more CPU on another core,
see ``reader.PIECE_BYTES``.) One helper thread per ``Overlap`` runs the
calls in order; at most ``depth`` wait for it, so memory stays bounded (that many blocks). An error is
raised on the main thread at the next call, ``wait`` or ``close``; calls after an error are skipped. Small
pieces run inline (after the queued ones): handing them over costs more than it saves.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

MIN_OVERLAP_BYTES = 256 * 1024  # below this a hand-over costs more than it saves

Call = Callable[[bytes], Any]


class Overlap:
    """Calls run in order on one helper thread (started on first use); ``close`` ends it."""

    __slots__ = ("_beside", "_error", "_queue", "_thread")

    def __init__(self, depth: int = 1, *, beside: bool = True) -> None:
        self._beside = beside  # False: every call runs inline (quick local writes)
        self._queue: queue.Queue[tuple[Call, bytes] | None] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, call: Call, data: bytes) -> None:
        """Run ``call(data)`` after the calls before it: on the helper thread when ``data`` is large."""
        if len(data) < MIN_OVERLAP_BYTES or not self._beside:
            self.wait()
            call(data)
            return
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="chatdata-overlap", daemon=True)
            self._thread.start()
        self._queue.put((call, data))  # blocks while ``depth`` calls wait: bounded memory

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if self._error is None:
                    item[0](item[1])
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def wait(self) -> None:
        """Block until every submitted call has ended; raise the first error here, on the caller's thread."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Wait for the calls, end the helper thread, and raise the first error (if any)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
