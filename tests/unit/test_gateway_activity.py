"""Activity is recorded off the hot path, at most once per model per interval per instance."""

import threading

from shared.gateway.activity import ActivityRecorder


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_writes_are_debounced_per_model():
    writes: list[tuple[str, str]] = []
    clock = Clock()
    recorder = ActivityRecorder(lambda model, at: writes.append((model, at)), interval=60, clock=clock)
    assert recorder.touch("a") is True
    assert recorder.touch("a") is False
    assert recorder.touch("b") is True
    clock.now += 59.9
    assert recorder.touch("a") is False
    clock.now += 0.2
    assert recorder.touch("a") is True
    recorder.flush()
    assert [model for model, _ in writes] == ["a", "b", "a"]
    assert all(at.endswith("Z") for _, at in writes)


def test_touch_does_not_wait_for_the_write():
    release = threading.Event()
    recorder = ActivityRecorder(lambda model, at: release.wait(5), interval=60, clock=Clock())
    assert recorder.touch("slow") is True  # returns although the write blocks
    release.set()
    recorder.flush()


def test_a_failed_write_is_retried_on_the_next_request():
    attempts: list[str] = []

    def flaky(model, at):
        attempts.append(model)
        if len(attempts) == 1:
            raise ConnectionError("storage down")

    recorder = ActivityRecorder(flaky, interval=60, clock=Clock())
    recorder.touch("m")
    recorder.flush()
    assert recorder.touch("m") is True  # not debounced: the first write was lost
    recorder.flush()
    assert attempts == ["m", "m"]
