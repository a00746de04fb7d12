"""Local endpoints for real: a router per endpoint and a model server per deployment, on loopback ports.

The model is the tiny base model exported untrained as an MLflow folder (it answers noise, which is all the
scoring contract needs); training is covered in test_local_backend.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localml import LocalBackend
from localml.state import alive, read_json
from shared.backends.base import MANAGED_TAG, BackendError, DeploymentPhase, ModelVersion

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"input_data": {"input_string": [{"role": "user", "content": "Where is my package?"}]}}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    state = tmp_path_factory.mktemp("model")
    out = state / "untrained"
    command = [sys.executable, "-m", "localml.tinymodel", "--mlflow", str(state), str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture
def backend(settings) -> Iterator[LocalBackend]:
    instance = LocalBackend(settings, stop_on_exit=False)
    yield instance
    for endpoint in instance.list_managed_endpoints():
        instance.begin_delete_endpoint(endpoint.name)
    instance.shutdown()


def wait_phase(backend: LocalBackend, endpoint: str, deployment: str, timeout: float = 180) -> DeploymentPhase:
    deadline = time.monotonic() + timeout
    phase = backend.get_deployment(endpoint, deployment).phase
    while phase is DeploymentPhase.CREATING and time.monotonic() < deadline:
        time.sleep(0.2)
        phase = backend.get_deployment(endpoint, deployment).phase
    return phase


def processes(backend: LocalBackend, endpoint: str) -> list[dict]:
    folder = backend.layout.endpoint(endpoint)
    records = [read_json(folder / "router.json")]
    records += [read_json(p) for p in folder.glob("deployments/*/server.json")]
    return [r for r in records if r]


def deploy(backend: LocalBackend, endpoint: str, deployment: str, folder: Path, version: str = "1") -> None:
    backend.begin_deployment(endpoint, deployment, ModelVersion("autotune-demo", version, str(folder)), "cpu", 1)


@pytest.mark.slow
def test_deployment_serves_the_scoring_contract(backend: LocalBackend, model_folder: Path) -> None:
    info = backend.begin_endpoint("at-demo", {"autotune-model": "demo"})
    assert info.managed and info.tags["autotune-model"] == "demo" and info.scoring_uri.startswith("http://127.0.0.1:")
    assert backend.begin_endpoint("at-demo", {}).scoring_uri == info.scoring_uri  # idempotent, stable URI
    started = time.monotonic()
    deploy(backend, "at-demo", "v1", model_folder)
    assert time.monotonic() - started < 5  # returns at once ...
    assert backend.get_deployment("at-demo", "v1").phase is DeploymentPhase.CREATING  # ... while it loads
    assert wait_phase(backend, "at-demo", "v1") is DeploymentPhase.SUCCEEDED
    state = backend.get_deployment("at-demo", "v1")
    assert state.model_version == "1" and state.created_at and not state.error

    backend.set_traffic("at-demo", {"v1": 100})
    assert backend.get_endpoint("at-demo").traffic == {"v1": 100}
    target = backend.scoring_target("at-demo")
    key = target.headers["Authorization"].removeprefix("Bearer ")
    assert key and key not in repr(target)
    assert backend.endpoint_last_request("at-demo") is None
    answer = backend.invoke(target, CHAT)
    assert isinstance(answer["output"], str) and answer["output"]
    assert backend.endpoint_last_request("at-demo")

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
        assert httpx.post(target.uri, json=CHAT, headers=headers).status_code == 401
    bad = {
        "only allowed first": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
        "must alternate": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        "last message": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        "non-empty": [],
    }
    for words, conversation in bad.items():
        response = httpx.post(target.uri, json={"input_data": {"input_string": conversation}}, headers=target.headers)
        assert response.status_code == 400 and words in response.json()["error"], (words, response.text)
    with pytest.raises(BackendError) as caught:
        backend.invoke(target, {"input_data": {"input_string": [{"role": "assistant", "content": "x"}]}})
    assert caught.value.code == "http_400"
    batch = {
        "input_data": {"input_string": [CHAT["input_data"]["input_string"]] * 2, "parameters": {"max_new_tokens": 3}}
    }
    assert len(backend.invoke(target, batch)["output"]) == 2

    records = processes(backend, "at-demo")
    assert len(records) == 2 and all(alive(r) for r in records)
    backend.begin_delete_endpoint("at-demo")
    assert backend.get_endpoint("at-demo") is None
    assert not any(alive(r) for r in records)
    assert backend.get_deployment("at-demo", "v1").phase is DeploymentPhase.NOT_FOUND
    with pytest.raises(httpx.HTTPError):
        httpx.post(target.uri, json=CHAT, headers=target.headers, timeout=2)


@pytest.mark.slow
def test_traffic_weights_and_pinning(backend: LocalBackend, model_folder: Path) -> None:
    backend.begin_endpoint("at-split", {})
    deploy(backend, "at-split", "blue", model_folder, "1")
    deploy(backend, "at-split", "green", model_folder, "2")
    assert wait_phase(backend, "at-split", "blue") is DeploymentPhase.SUCCEEDED
    assert wait_phase(backend, "at-split", "green") is DeploymentPhase.SUCCEEDED
    target = backend.scoring_target("at-split")
    short = {"input_data": {**CHAT["input_data"], "parameters": {"max_new_tokens": 1}}}

    def served(count: int, headers: dict[str, str]) -> Counter:
        return Counter(
            httpx.post(target.uri, json=short, headers=headers, timeout=60).headers["azureml-model-deployment"]
            for _ in range(count)
        )

    assert httpx.post(target.uri, json=short, headers=target.headers).status_code == 503  # no traffic yet
    backend.set_traffic("at-split", {"blue": 100, "green": 0})
    assert served(10, target.headers) == Counter({"blue": 10})
    pinned = backend.scoring_target("at-split", "green").headers
    assert served(3, pinned) == Counter({"green": 3})  # the pin header reaches a deployment with 0% traffic
    backend.set_traffic("at-split", {"blue": 50, "green": 50})
    split = served(40, target.headers)
    assert split["blue"] >= 5 and split["green"] >= 5, split
    unknown = httpx.post(target.uri, json=short, headers={**target.headers, "azureml-model-deployment": "nope"})
    assert unknown.status_code == 404

    with pytest.raises(BackendError, match="add up to 100"):
        backend.set_traffic("at-split", {"blue": 50, "green": 20})
    with pytest.raises(BackendError, match="do not exist"):
        backend.set_traffic("at-split", {"purple": 100})
    with pytest.raises(BackendError, match="traffic"):
        backend.begin_delete_deployment("at-split", "blue")  # Azure refuses too: move the traffic first
    backend.set_traffic("at-split", {"green": 100, "blue": 0})
    blue = read_json(backend.layout.deployment("at-split", "blue") / "server.json")
    backend.begin_delete_deployment("at-split", "blue")
    assert not alive(blue)
    assert backend.get_deployment("at-split", "blue").phase is DeploymentPhase.NOT_FOUND
    assert backend.get_endpoint("at-split").deployments == ("green",)
    assert served(3, target.headers) == Counter({"green": 3})

    green = read_json(backend.layout.deployment("at-split", "green") / "server.json")
    os.kill(green["pid"], signal.SIGKILL)  # the scoring server dies: the deployment is failed, the router says 503
    deadline = time.monotonic() + 10
    while alive(green) and time.monotonic() < deadline:
        time.sleep(0.05)
    state = backend.get_deployment("at-split", "green")
    assert state.phase is DeploymentPhase.FAILED and "exited unexpectedly" in state.error
    assert httpx.post(target.uri, json=short, headers=target.headers).status_code == 503


@pytest.mark.slow
def test_unloadable_model_folder_fails_the_deployment(backend: LocalBackend, model_folder: Path, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    for weights in broken.rglob("model.safetensors"):
        weights.write_bytes(b"not a tensor file")
    backend.begin_endpoint("at-broken", {})
    deploy(backend, "at-broken", "v1", broken)
    assert wait_phase(backend, "at-broken", "v1") is DeploymentPhase.FAILED
    state = backend.get_deployment("at-broken", "v1")
    assert "cannot load the model" in state.error and str(broken) in state.error
    with pytest.raises(BackendError, match="not found"):
        deploy(backend, "at-nothing-here", "v1", model_folder)  # no such endpoint


CRASHING_HOST = """
import os, signal, sys, time
from shared.settings import get_settings
from shared.backends.base import ModelVersion
from localml import LocalBackend
b = LocalBackend(get_settings())  # registers its atexit shutdown, which a crash never runs
b.begin_endpoint("at-keep", {})
b.begin_deployment("at-keep", "v1", ModelVersion("autotune-demo", "1", sys.argv[1]), "cpu", 1)
deadline = time.monotonic() + 180
while b.get_deployment("at-keep", "v1").phase.value == "creating" and time.monotonic() < deadline:
    time.sleep(0.2)
b.set_traffic("at-keep", {"v1": 100})
print(b.get_endpoint("at-keep").scoring_uri, b.get_deployment("at-keep", "v1").phase.value, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

LOOKING_PROCESS = """
from shared.settings import get_settings
from localml import LocalBackend
print(LocalBackend(get_settings()).get_endpoint("at-keep").state)
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_restarted_host_readopts_and_restores_endpoints(settings, model_folder: Path) -> None:
    # A host starts an endpoint and a deployment, then crashes: its processes live on, owned by no one.
    crashed = run_python(CRASHING_HOST, str(model_folder))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    uri, phase = crashed.stdout.split()
    assert phase == "succeeded"

    # The next host adopts them: same URI, still serving, now its own.
    host = LocalBackend(settings, stop_on_exit=False)
    assert host.get_endpoint("at-keep").scoring_uri == uri
    assert host.get_deployment("at-keep", "v1").phase is DeploymentPhase.SUCCEEDED
    assert host.invoke(host.scoring_target("at-keep"), CHAT)["output"]
    records = processes(host, "at-keep")
    assert len(records) == 2 and all(alive(r) for r in records)

    # Another process that only looks (a CLI) exits without stopping what the live host owns.
    assert run_python(LOOKING_PROCESS).stdout.strip() == "Succeeded"
    assert all(alive(r) for r in records)

    # A clean exit of the host stops what it owns (no orphans) ...
    host.shutdown()
    assert not any(alive(r) for r in records)
    # ... and the next host brings the endpoint back on the same URI.
    restarted = LocalBackend(settings, stop_on_exit=False)
    try:
        assert restarted.get_endpoint("at-keep").scoring_uri == uri
        assert wait_phase(restarted, "at-keep", "v1") is DeploymentPhase.SUCCEEDED
        assert restarted.invoke(restarted.scoring_target("at-keep"), CHAT)["output"]
    finally:
        restarted.begin_delete_endpoint("at-keep")
        restarted.shutdown()


def test_missing_model_folder_fails_the_deployment(backend: LocalBackend, tmp_path) -> None:
    backend.begin_endpoint("at-gone", {})
    deploy(backend, "at-gone", "v1", tmp_path / "no-model")  # fails fast: no MLmodel
    assert wait_phase(backend, "at-gone", "v1", timeout=60) is DeploymentPhase.FAILED
    assert "not an MLflow model folder" in backend.get_deployment("at-gone", "v1").error


def test_endpoint_names_are_checked(backend: LocalBackend) -> None:
    for name in ("x", "1abc", "has_underscore", "a" * 33):
        with pytest.raises(BackendError, match="invalid"):
            backend.begin_endpoint(name, {})
    assert backend.get_endpoint("at-none") is None
    with pytest.raises(BackendError, match="not found"):
        backend.scoring_target("at-none")


def test_endpoint_calls_keep_ml_libraries_out_of_the_parent(settings, tmp_path) -> None:
    """The function app's process never imports torch, transformers, peft or mlflow through this backend."""
    script = """
import json, sys
from shared.settings import get_settings
from localml import LocalBackend
b = LocalBackend(get_settings())
base = b.resolve_base_model(); b.check_compute(base); b.build_parameters(base, b.check_compute(base), {})
info = b.begin_endpoint("at-light", {})
b.get_endpoint("at-light"); b.list_managed_endpoints(); b.scoring_target("at-light")
b.get_deployment("at-light", "v1"); b.endpoint_last_request("at-light"); b.find_job("nothing")
b.begin_delete_endpoint("at-light")
heavy = [m for m in ("torch", "transformers", "peft", "mlflow", "tokenizers") if m in sys.modules]
print(json.dumps(heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_managed_tag_is_always_set(backend: LocalBackend) -> None:
    info = backend.begin_endpoint("at-tagged", {MANAGED_TAG: "false", "team": "support"})
    assert info.managed and info.tags["team"] == "support"
    assert [e.name for e in backend.list_managed_endpoints()] == ["at-tagged"]
