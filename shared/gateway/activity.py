"""The time of the last scoring request per model, for the idle sweeper, written off the hot path.

Why debounced: the sweeper needs minute precision at best (idleness is measured in tens of minutes), while a
busy model gets many requests per second. Each instance writes at most once per model per ``interval``
seconds, from a background thread, so a request never waits on storage. The write only moves the time
forward (read-modify-write with ETags), so instances racing each other never move it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shared.ledger import ActivityRecord, Ledger
from shared.timeutil import iso

log = logging.getLogger(__name__)

__all__ = ["ActivityRecorder", "ledger_writer"]


def ledger_writer(ledger: Ledger) -> Callable[[str, str], None]:
    """A writer storing ``last_request_at`` in the model's ``ActivityRecord``, never moving it backwards."""

    def write(model: str, at: str) -> None:
        def change(current: ActivityRecord | None) -> ActivityRecord | None:
            record = current or ActivityRecord(model=model)
            if record.last_request_at and record.last_request_at >= at:
                return None
            record.last_request_at = at
            return record

        ledger.mutate(ActivityRecord, "activity", model, change)

    return write


_executor: ThreadPoolExecutor | None = None
_executor_guard = threading.Lock()


def _shared_executor() -> ThreadPoolExecutor:
    """One writer thread per process, whatever the number of recorders (tests build many): writes stay in order."""
    global _executor
    with _executor_guard:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-activity")
        return _executor


class ActivityRecorder:
    """Records requests per model; ``touch`` is O(1) and schedules at most one write per model per interval."""

    def __init__(
        self,
        write: Callable[[str, str], None],
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        executor: ThreadPoolExecutor | None = None,
    ):
        self._write = write
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._executor = executor or _shared_executor()

    def touch(self, model: str) -> bool:
        """Note a request for ``model`` now; True when this call scheduled a ledger write."""
        now = self._clock()
        with self._lock:
            last = self._last.get(model)
            if last is not None and now - last < self._interval:
                return False
            self._last[model] = now
        self._executor.submit(self._store, model, iso())
        return True

    def _store(self, model: str, at: str) -> None:
        try:
            self._write(model, at)
        except Exception:  # a lost activity write must never fail a request; the next one retries
            log.warning("could not record activity for model %s; will retry on the next request", model, exc_info=True)
            with self._lock:
                self._last.pop(model, None)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the writes scheduled so far (tests, shutdown)."""
        self._executor.submit(lambda: None).result(timeout)
