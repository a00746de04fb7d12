"""Run GIL-releasing work (SHA-256 of the content, writing output) on a helper thread while the main thread parses.

Why: hashing a multi-MB chunk and writing a 1 MiB block to a file or a blob release the GIL, so on a machine with
two cores they can run beside the JSON parsing instead of after it. At most one call is in flight per ``Overlap``:
calls keep their order, memory stays bounded (one chunk or block), and an error is raised on the main thread at
the next call or at ``wait``. Small pieces run inline: a thread per call only pays off for large buffers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

MIN_OVERLAP_BYTES = 256 * 1024  # below this a thread start costs more than it saves


class Overlap:
    """One background call at a time, in order; ``wait`` joins it and re-raises its error."""

    __slots__ = ("_error", "_thread")

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, call: Callable[[bytes], Any], data: bytes) -> None:
        """Run ``call(data)`` after the previous call ended: on a helper thread when ``data`` is large."""
        self.wait()
        if len(data) < MIN_OVERLAP_BYTES:
            call(data)
            return
        self._thread = threading.Thread(target=self._run, args=(call, data), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[bytes], Any], data: bytes) -> None:
        try:
            call(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by wait(), which re-raises it
            self._error = exc

    def wait(self) -> None:
        """Block until the call in flight (if any) has ended; raise its error here, on the caller's thread."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
