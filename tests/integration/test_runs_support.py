"""Helpers for the runs/events/reconciler integration tests (no tests here): a loopback Event Grid receiver the
local backend's jobs post their events to, prepared datasets in Azurite, and loops that drive the reconciler.

Everything is real: Azurite, the local backend (real tiny training, real scoring servers), the events the jobs
publish with azure-eventgrid. Tests hand the received events to ``shared.events.handle_event`` the way the
``on_ml_job_event`` trigger does, so they can also replay, reorder and alter them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from shared.ledger import DatasetRecord, Ledger, ModelRecord, RunRecord
from shared.runs.context import RunContext
from shared.timeutil import iso

T = TypeVar("T")

# Small: the tiny base model learns it in a few seconds; max_steps keeps every training short.
FAST_TRAINING = {"max_steps": 12}
# Rows our checks never saw (written straight into a split): they reach the job, whose validate stage drops every
# one of them (a question with no answer), so the job fails.
UNTRAINABLE = [{"messages": [{"role": "user", "content": f"unanswered question {i}"}]} for i in range(30)]


class EventSink:
    """A loopback HTTP server standing in for the Functions host's Event Grid webhook: it records every event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"[]")
                except ValueError:
                    payload = []
                with sink._lock:
                    sink.events.extend(payload if isinstance(payload, list) else [payload])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> EventSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def for_job(self, job_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if str((e.get("data") or {}).get("runId")) == job_name]


def closed_port_url() -> str:
    """The URL of a loopback port nobody listens on (events sent there are lost, like a missed delivery)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def make_context(monkeypatch: pytest.MonkeyPatch, **env: str) -> RunContext:
    """Settings from the test's environment plus ``env``, a ledger on the test's tables, the local backend."""
    from shared.backends import get_backend, reset_backends
    from shared.settings import get_settings, reset_settings

    env.setdefault("FINETUNE_PARAMETERS", json.dumps(FAST_TRAINING))
    # These tests are about the rollout's mechanics: every version is evaluated (a few short answers) and promoted
    # whatever its scores; the gate's own decisions are tested in test_promotion_gate.py.
    env.setdefault("PROMOTION_POLICY", "always")
    env.setdefault("EVAL_MAX_EXAMPLES", "2")
    env.setdefault("EVAL_MAX_NEW_TOKENS", "16")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    reset_backends()
    settings = get_settings()
    return RunContext(settings=settings, ledger=Ledger(settings), backend=get_backend(settings))


def shutdown_backend(ctx: RunContext) -> None:
    """Stop the local backend's scoring servers and jobs (no orphans after a test)."""
    for name in ("shutdown", "close"):
        method = getattr(ctx.backend, name, None)
        if callable(method):
            with contextlib.suppress(Exception):
                method()
            return


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    sink = EventSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def runs_ctx(app_env: dict[str, str], event_sink: EventSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunContext]:
    ctx = make_context(monkeypatch, AUTOTUNE_HOST_URL=event_sink.url)
    yield ctx
    shutdown_backend(ctx)


def conversations(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct support conversations (the topics the tiny model learns; a ticket number per seed)."""
    from tests.testdata import conversations as rows

    out = rows(count, seed=seed)
    for index, row in enumerate(out):
        question = next(m for m in row["messages"] if m["role"] == "user")
        question["content"] += f" (ticket {seed}-{index})"
    return out


def prepare_dataset(
    ctx: RunContext, model: str, *, seed: int, rows: int = 24, train_rows: list[dict] | None = None
) -> DatasetRecord:
    """What ingestion leaves behind: ``datasets/{model}/{id}/train.jsonl`` + ``test.jsonl`` written by the real
    preparation (so split by conversation hash), ``rows - 4`` training and 4 held-out conversations, and a
    prepared record. ``train_rows`` are written into train.jsonl as they are, as if our checks had not seen them."""
    from azure.core.exceptions import ResourceExistsError

    from shared.chatdata import PrepareOptions, prepare
    from shared.storage import blob_service

    outputs: dict[str, list[bytes]] = {"train": [], "test": [], "rejected": []}
    candidates = conversations(max(rows * 5, 120), seed)
    body = "".join(json.dumps(row) + "\n" for row in candidates).encode()
    options = PrepareOptions(test_percent=ctx.settings.test_split_percent, min_train_rows=1)
    prepare([body], outputs["train"].append, outputs["test"].append, outputs["rejected"].append, options)
    prepared = {split: b"".join(parts).splitlines(keepends=True) for split, parts in outputs.items()}
    assert len(prepared["test"]) >= 4 and len(prepared["train"]) >= rows - 4, "draw more candidates"
    files = {"train": b"".join(prepared["train"][: rows - 4]), "test": b"".join(prepared["test"][:4])}
    if train_rows is not None:
        files["train"] = "".join(json.dumps(row) + "\n" for row in train_rows).encode()
    dataset_id = hashlib.sha256(files["train"] + b"\0" + files["test"]).hexdigest()[:16]
    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    prefix = f"datasets/{model}/{dataset_id}/"
    for split, data in files.items():
        container.upload_blob(f"{prefix}{split}.jsonl", data, overwrite=True)
    counts = {split: data.count(b"\n") for split, data in files.items()}
    record = DatasetRecord(
        model=model,
        dataset_id=dataset_id,
        state="prepared",
        source_blob=f"incoming/{model}/seed-{seed}.jsonl",
        prefix=prefix,
        prepared_at=iso(),
        report={"total_lines": rows, **counts, "rejected": 0, "reasons": {}},
    )
    return ctx.ledger.create(record)


def upload_blob(ctx: RunContext, path: str, body: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError

    from shared.storage import blob_service

    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    container.upload_blob(path, body, overwrite=True)


def run_of(ctx: RunContext, run: RunRecord) -> RunRecord:
    fresh = ctx.ledger.get(RunRecord, run.model, run.run_id)
    assert fresh is not None
    return fresh


def model_of(ctx: RunContext, model: str) -> ModelRecord:
    record = ctx.ledger.get(ModelRecord, "models", model)
    assert record is not None, f"no model record for {model}"
    return record


def job_events(sink: EventSink, job_name: str, timeout: float = 240) -> list[dict[str, Any]]:
    """The final event(s) the local job posted (RunCompleted, or RunStatusChanged Failed/Canceled); the
    RunStatusChanged(Running) a job sends when it starts is left out."""

    def final() -> list[dict[str, Any]]:
        events = sink.for_job(job_name)
        return [e for e in events if str((e.get("data") or {}).get("runStatus") or "").lower() != "running"]

    return wait_for(final, timeout, f"the final event of job {job_name}")


def drive(ctx: RunContext, model: str, done: Callable[[ModelRecord], bool], timeout: float = 180) -> ModelRecord:
    """Tick the reconciler for ``model`` (as the timer would, only faster) until ``done(record)``."""
    from shared.reconcile.tick import reconcile_model

    def tick() -> ModelRecord | None:
        reconcile_model(ctx, model)
        record = model_of(ctx, model)
        return record if done(record) else None

    return wait_for(tick, timeout, f"model {model} to converge", interval=0.3)


def live_on(version: str) -> Callable[[ModelRecord], bool]:
    return lambda m: m.state == "live" and m.live_version == version and not m.deployment


def chat(ctx: RunContext, endpoint: str, deployment: str | None = None) -> str:
    """One real scoring request through the backend (as the gateway sends it), returning the text."""
    from shared.reconcile.smoke import output_text, smoke_payload

    target = ctx.backend.scoring_target(endpoint, deployment)
    answer = ctx.backend.invoke(target, smoke_payload([{"role": "user", "content": "Where is my package?"}]))
    return output_text(answer)
