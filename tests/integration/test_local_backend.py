"""The local backend's jobs and registry, for real: tiny training in a subprocess, blobs in Azurite, events
posted with azure-eventgrid to a loopback webhook started here, MLflow registry in the test's state dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localml import LocalBackend
from localml.state import alive, read_json
from shared.backends.base import RUN_TAG, BackendError, FineTuneRequest, JobState
from tests.testdata import TOPICS, conversations


class EventSink:
    """A loopback Event Grid webhook: records every delivery (path, headers, events)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, str], list[dict]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.deliveries.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events_for(self, job: str, timeout: float = 30, *, running: bool = False) -> list[dict]:
        """The job's final event(s); with ``running`` also the RunStatusChanged(Running) sent at its start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                e
                for _, _, events in self.deliveries
                for e in events
                if e["data"]["runId"] == job and (running or e["data"].get("runStatus") != "Running")
            ]
            if found:
                return found
            time.sleep(0.1)
        return []


@pytest.fixture
def sink() -> Iterator[EventSink]:
    server = EventSink()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny base model, built once per module (each test's state dir gets a copy, as if cached)."""
    from localml.tinymodel import tiny_model_dir

    state = tmp_path_factory.mktemp("tiny")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "localml.tinymodel", str(tiny_model_dir(state))], cwd=root, check=True)
    return tiny_model_dir(state)


@pytest.fixture
def backend(app_env, sink, monkeypatch, tiny_model) -> Iterator[LocalBackend]:
    from shared.settings import get_settings, reset_settings

    monkeypatch.setenv("AUTOTUNE_HOST_URL", sink.url)
    reset_settings()
    instance = LocalBackend(get_settings(), stop_on_exit=False)
    target = Path(instance.resolve_base_model().id)
    shutil.copytree(tiny_model, target)
    yield instance
    instance.shutdown()


def upload(settings, rows: list[dict], name: str) -> str:
    from shared.storage import blob_service

    container = blob_service(settings).get_container_client(settings.training_container)
    if not container.exists():
        container.create_container()
    path = f"datasets/demo/ds1/{name}.jsonl"
    container.upload_blob(path, "".join(json.dumps(r) + "\n" for r in rows), overwrite=True)
    return path


def request_for(backend: LocalBackend, run_id: str, overrides: dict, *, validate: bool = True) -> FineTuneRequest:
    base = backend.resolve_base_model()
    compute = backend.check_compute(base)
    params = backend.build_parameters(base, compute, overrides) if validate else {**overrides}
    return FineTuneRequest(
        run_id=run_id,
        model="demo",
        dataset_id="ds1",
        train_path=upload(backend.settings, conversations(40, seed=1), "train"),
        test_path=upload(backend.settings, conversations(8, seed=2), "test"),
        parameters=params,
        base_model=base,
        compute=compute,
        experiment=backend.settings.experiment_name,
    )


def wait_terminal(backend: LocalBackend, job: str, timeout: float = 240) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.get_job(job)
        if status.state.terminal:
            return status
        time.sleep(0.3)
    pytest.fail(f"job {job} did not finish in {timeout}s: {backend.get_job(job)}")


def check_event_shape(event: dict, backend: LocalBackend, job: str, run_id: str) -> None:
    assert event["topic"] == backend.settings.local_workspace_id
    data = event["data"]
    assert event["subject"] == f"experiments/{data['experimentId']}/runs/{job}"
    assert data["runId"] == job
    assert data["runType"] == "azureml.PipelineRun"
    assert data["experimentName"] == backend.settings.experiment_name
    assert data["runTags"][RUN_TAG] == run_id
    assert data["runProperties"]["azureml.runsource"] == "azureml.PipelineRun"
    assert event["dataVersion"] == "2" and event["eventTime"] and event["id"]


@pytest.mark.slow
def test_job_trains_registers_and_reports_completion(backend: LocalBackend, sink: EventSink) -> None:
    request = request_for(backend, "demo-run-ok", {})
    assert request.parameters["learning_rate"] == 0.003  # the tiny model's defaults, not the notebook's 5e-6
    job = backend.submit_finetune(request)
    second = backend.submit_finetune(request_for(backend, "demo-run-2", {"max_steps": 2}))
    assert backend.submit_finetune(request) == job  # idempotent by run id
    assert backend.find_job("demo-run-ok") == job
    status = wait_terminal(backend, job)
    assert status.state is JobState.COMPLETED, status.error
    assert {"train_loss", "eval_loss", "perplexity"} <= set(status.metrics)
    assert status.metrics["eval_loss"] < status.metrics["train_loss"]  # it learned the data
    assert status.progress["stage"] == "done" and status.progress["max_steps"] > 0

    events = sink.events_for(job)
    assert [e["eventType"] for e in events] == ["Microsoft.MachineLearningServices.RunCompleted"]
    check_event_shape(events[0], backend, job, "demo-run-ok")
    started = sink.events_for(job, running=True)[0]  # delivered first: Running, as Azure ML announces it
    assert started["eventType"].endswith("RunStatusChanged") and started["data"]["runStatus"] == "Running"
    path, headers, _ = next(d for d in sink.deliveries if d[2][0]["data"]["runId"] == job)
    assert path.startswith("/runtime/webhooks/eventgrid?") and "functionName=on_ml_job_event" in path
    assert headers["aeg-event-type"] == "Notification"

    model_dir = backend.layout.job_model(job)
    assert (model_dir / "MLmodel").exists()
    tags = {RUN_TAG: "demo-run-ok", "eval_loss": str(status.metrics["eval_loss"])}
    first = backend.register_model(job, "autotune-demo", tags)
    again = backend.register_model(job, "autotune-demo", tags)
    assert (first.version, again.version) == ("1", "1")
    assert first.tags[RUN_TAG] == "demo-run-ok" and first.path == str(model_dir)
    assert backend.get_model("autotune-demo", "1") == first
    assert backend.get_model("autotune-demo", "7") is None
    assert wait_terminal(backend, second).state is JobState.COMPLETED
    assert backend.register_model(second, "autotune-demo", {RUN_TAG: "demo-run-2"}).version == "2"

    # The fine-tuned model answers like the training data (greedy decoding).
    from shared.backends.base import ModelVersion

    backend.begin_endpoint("at-demo", {})
    backend.begin_deployment("at-demo", "v1", ModelVersion("autotune-demo", "1"), "cpu", 1)
    deadline = time.monotonic() + 120
    while backend.get_deployment("at-demo", "v1").phase.value == "creating" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.get_deployment("at-demo", "v1").phase.value == "succeeded"
    question, answer = TOPICS["password"][0][0], TOPICS["password"][1]
    payload = {"input_data": {"input_string": [{"role": "user", "content": question}]}}
    output = backend.invoke(backend.scoring_target("at-demo", "v1"), payload)["output"]
    shared_words = set(output.lower().split()) & set(answer.lower().split())
    assert len(shared_words) >= 3, output
    backend.begin_delete_endpoint("at-demo")


def test_bad_parameter_fails_the_job_and_says_which(backend: LocalBackend, sink: EventSink) -> None:
    with pytest.raises(BackendError, match="lr_scheduler_type"):
        request_for(backend, "demo-bad", {"lr_scheduler_type": "sometimes"})
    job = backend.submit_finetune(request_for(backend, "demo-bad", {"lr_scheduler_type": "sometimes"}, validate=False))
    status = wait_terminal(backend, job, timeout=60)
    assert status.state is JobState.FAILED
    assert "lr_scheduler_type" in status.error and "sometimes" in status.error
    events = sink.events_for(job)
    assert [e["eventType"] for e in events] == ["Microsoft.MachineLearningServices.RunStatusChanged"]
    assert events[0]["data"]["runStatus"] == "Failed"
    check_event_shape(events[0], backend, job, "demo-bad")
    with pytest.raises(BackendError, match="failed"):
        backend.register_model(job, "autotune-demo", {RUN_TAG: "demo-bad"})


def test_cancel_ends_the_job_canceled(backend: LocalBackend, sink: EventSink) -> None:
    job = backend.submit_finetune(request_for(backend, "demo-cancel", {"max_steps": 100000}))
    deadline = time.monotonic() + 60
    while backend.get_job(job).state is JobState.QUEUED and time.monotonic() < deadline:
        time.sleep(0.1)
    backend.cancel_job(job)
    status = backend.get_job(job)
    assert status.state is JobState.CANCELED and "canceled" in status.error
    assert not alive(read_json(backend.layout.job(job) / "process.json")) or _exits(backend, job)
    events = sink.events_for(job)
    assert events and events[0]["data"]["runStatus"] == "Canceled"
    backend.cancel_job(job)  # idempotent
    assert backend.get_job(job).state is JobState.CANCELED


def _exits(backend: LocalBackend, job: str, timeout: float = 20) -> bool:
    record = read_json(backend.layout.job(job) / "process.json")
    deadline = time.monotonic() + timeout
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(record)


def test_vanished_job_process_is_marked_failed(backend: LocalBackend) -> None:
    job = backend.submit_finetune(request_for(backend, "demo-vanish", {"max_steps": 100000}))
    record = read_json(backend.layout.job(job) / "process.json")
    os.killpg(record["pid"], signal.SIGKILL)
    assert _exits(backend, job)
    status = backend.get_job(job)
    assert status.state is JobState.FAILED and "without reporting a result" in status.error


def test_restarted_backend_adopts_a_running_job(backend: LocalBackend) -> None:
    job = backend.submit_finetune(request_for(backend, "demo-adopt", {"max_steps": 100000}))
    fresh = LocalBackend(backend.settings, stop_on_exit=False)  # a restarted devhost
    assert fresh.find_job("demo-adopt") == job
    assert fresh.get_job(job).state in (JobState.QUEUED, JobState.RUNNING)
    assert job in fresh.jobs.owned
    fresh.shutdown()  # a clean exit of the new host stops the job it adopted, with the reason recorded
    status = backend.get_job(job)
    assert status.state is JobState.FAILED and "host that started it shut down" in status.error


def test_missing_local_base_model_names_the_setting(app_env, tmp_path) -> None:
    from shared.settings import load_settings

    settings = load_settings({**app_env, "LOCAL_BASE_MODEL": str(tmp_path / "nowhere")})
    with pytest.raises(BackendError) as caught:
        LocalBackend(settings, stop_on_exit=False).resolve_base_model()
    assert caught.value.setting == "LOCAL_BASE_MODEL" and "LOCAL_BASE_MODEL" in str(caught.value)


def test_compute_is_local(backend: LocalBackend) -> None:
    info = backend.check_compute(backend.resolve_base_model())
    assert info.name == "local" and info.instance_type in ("cpu", "cuda")
    assert (info.gpus_per_node > 0) == (info.instance_type == "cuda")


@pytest.mark.slow
def test_tiny_model_builds_deterministically(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    outputs = []
    for n in (1, 2):  # two separate processes: nothing cached in memory
        out = tmp_path / f"m{n}"
        subprocess.run([sys.executable, "-m", "localml.tinymodel", str(out)], cwd=root, check=True)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(outputs[0])


def test_preprocess_labels_only_assistant_tokens(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from localml.training import IGNORE_INDEX, encode

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my package?"},
        {"role": "assistant", "content": "In transit."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You are welcome."},
    ]
    item = encode(tokenizer, messages, limit=1024)
    labelled = [t for t, label in zip(item["input_ids"], item["labels"], strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == "In transit.<|end|>You are welcome.<|end|>"
    assert tokenizer.decode(item["input_ids"]).startswith("<|system|>\nBe brief.<|end|>\n<|user|>\n")
    first = next(i for i, label in enumerate(item["labels"]) if label != IGNORE_INDEX)
    assert encode(tokenizer, messages, limit=first) is None  # no assistant token left: dropped, as on Azure
    cut = encode(tokenizer, messages, limit=first + 1)
    assert len(cut["input_ids"]) == first + 1 and cut["labels"][-1] != IGNORE_INDEX


def test_unknown_job_is_not_found(backend: LocalBackend) -> None:
    for name in ("no_such_job_123", "../etc"):
        with pytest.raises(BackendError) as caught:
            backend.get_job(name)
        assert caught.value.code == "not_found"
