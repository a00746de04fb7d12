"""``LocalBackend``: the ML platform protocol on one machine (``ML_BACKEND=local``).

Light by design: this module, and everything it imports, is stdlib + httpx + our own light modules. The
heavy work (torch, transformers, peft, mlflow) runs in child processes started with this interpreter:
``job`` (fine-tuning), ``mlflowstore`` (registry), ``server`` (model servers); endpoints are fronted by a
stdlib ``router``. Their state is in files under ``LOCAL_STATE_DIR`` (see ``layout.py``), so a new
``LocalBackend`` (a restarted devhost) finds, re-adopts or marks failed whatever the previous one started.

Processes this instance starts or adopts are stopped by ``shutdown()``, registered with ``atexit`` unless
``stop_on_exit=False``: a clean devhost exit leaves no orphans; its deployments come back on the next start.
"""

from __future__ import annotations

import atexit
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from localml.endpoints import EndpointManager
from localml.jobs import JobManager, gpu_count
from localml.layout import Layout
from localml.params import TINY_MODEL_DEFAULTS
from localml.scoring import PIN_HEADER
from localml.state import child_env, read_json
from shared.backends.base import (
    BackendError,
    BaseModelRef,
    ComputeInfo,
    DeploymentState,
    EndpointInfo,
    FineTuneRequest,
    JobStatus,
    ModelVersion,
    ScoringTarget,
)
from shared.settings import SPEC, Settings

log = logging.getLogger("autotune.local")

REGISTRY_TIMEOUT_SECONDS = 180

__all__ = ["LocalBackend"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as app-setting environment variables, so a child process reads exactly these settings."""
    env: dict[str, str] = {}
    for spec in SPEC:
        value = getattr(settings, spec.attr)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[spec.env] = text
    return env


class LocalBackend:
    """A real, small ML platform: subprocess jobs, MLflow registry, local scoring endpoints."""

    name = "local"

    def __init__(self, settings: Settings, *, stop_on_exit: bool = True):
        self.settings = settings
        self.layout = Layout(settings.local_state_dir)
        env = settings_env(settings)
        env["LOCAL_STATE_DIR"] = str(self.layout.root)
        self._env = env
        self.jobs = JobManager(settings, self.layout, env)
        self.endpoints = EndpointManager(self.layout, env)
        self._adopted = False
        self._adopt_lock = threading.Lock()
        if stop_on_exit:
            atexit.register(self.shutdown)

    # lifecycle --------------------------------------------------------------------------------------------
    def _ready(self) -> None:
        """Re-adopt on first use (not in ``__init__``: constructing the backend stays free at cold start)."""
        if self._adopted:
            return
        with self._adopt_lock:
            if self._adopted:
                return
            self.jobs.adopt()
            self.endpoints.adopt()
            self._adopted = True

    def shutdown(self) -> None:
        """Stop the jobs and scoring processes this instance started or adopted (idempotent)."""
        self.jobs.shutdown()
        self.endpoints.shutdown()

    # fine-tuning ------------------------------------------------------------------------------------------
    def resolve_base_model(self) -> BaseModelRef:
        from localml import tinymodel  # light at import (torch loads inside its functions)

        configured = self.settings.local_base_model
        if configured:
            path = Path(configured).expanduser().resolve()
            if not (path / "config.json").exists():
                raise BackendError(
                    f"LOCAL_BASE_MODEL points at {path}, which is not a Hugging Face model folder (no config.json); "
                    "set LOCAL_BASE_MODEL to a local checkpoint folder, or leave it empty for the tiny model",
                    setting="LOCAL_BASE_MODEL",
                    code="base_model_not_found",
                )
            return BaseModelRef(name=path.name, version="local", id=str(path), tags={})
        return BaseModelRef(
            name=tinymodel.TINY_MODEL_NAME,
            version=tinymodel.TINY_MODEL_VERSION,
            id=str(tinymodel.tiny_model_dir(self.layout.root)),
            tags={"model_specific_defaults": repr(TINY_MODEL_DEFAULTS), "autotune-tiny": "true"},
        )

    def check_compute(self, base: BaseModelRef) -> ComputeInfo:
        gpus = gpu_count()
        return ComputeInfo(name="local", instance_type="cuda" if gpus else "cpu", gpus_per_node=gpus)

    def build_parameters(self, base: BaseModelRef, compute: ComputeInfo, overrides: dict[str, Any]) -> dict[str, Any]:
        from shared.finetune_params import resolve_parameters

        return resolve_parameters(base.tags.get("model_specific_defaults"), operator=overrides, model=base.name)

    def submit_finetune(self, request: FineTuneRequest) -> str:
        self._ready()
        return self.jobs.submit(request)

    def find_job(self, run_id: str) -> str | None:
        return self.jobs.find(run_id)

    def get_job(self, job_name: str) -> JobStatus:
        self._ready()
        return self.jobs.status(job_name)

    def cancel_job(self, job_name: str) -> None:
        self._ready()
        self.jobs.cancel(job_name)

    # registry ---------------------------------------------------------------------------------------------
    def _registry(self, *args: str) -> dict[str, Any] | None:
        command = [sys.executable, "-m", "localml.mlflowstore", *args, "--state", str(self.layout.root)]
        from localml.state import PROJECT_ROOT

        try:
            done = subprocess.run(
                command,
                cwd=str(PROJECT_ROOT),
                env=child_env(self._env),
                capture_output=True,
                text=True,
                timeout=REGISTRY_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BackendError("the local model registry did not answer in time", retryable=True) from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise BackendError(
                f"the local model registry failed: {done.stderr.strip()[-500:] or 'no output'}", retryable=True
            )
        answer = json.loads(lines[-1])
        if not answer.get("ok"):
            raise BackendError(f"model registration failed: {answer.get('error')}", code="registry_error")
        return answer.get("version")

    def register_model(self, job_name: str, name: str, tags: dict[str, str]) -> ModelVersion:
        status = self.get_job(job_name)
        if status.state.value != "completed":
            raise BackendError(f"job {job_name} is {status.state.value}; only a completed job has a model to register")
        found = self._registry("register", "--job", job_name, "--name", name, "--tags", json.dumps(tags))
        assert found is not None
        return ModelVersion(name=found["name"], version=found["version"], path=found["path"], tags=found["tags"])

    def get_model(self, name: str, version: str) -> ModelVersion | None:
        found = read_json(self.layout.registry_entry(name, str(version)))
        if found is None:
            found = self._registry("get", "--name", name, "--version", str(version))
        if not found:
            return None
        return ModelVersion(name=found["name"], version=found["version"], path=found["path"], tags=found["tags"])

    # endpoints --------------------------------------------------------------------------------------------
    def begin_endpoint(self, name: str, tags: dict[str, str]) -> EndpointInfo:
        self._ready()
        return self.endpoints.begin_endpoint(name, tags)

    def get_endpoint(self, name: str) -> EndpointInfo | None:
        self._ready()
        return self.endpoints.info(name)

    def list_managed_endpoints(self) -> list[EndpointInfo]:
        self._ready()
        return self.endpoints.list_managed()

    def begin_deployment(
        self, endpoint: str, deployment: str, model: ModelVersion, instance_type: str, instance_count: int
    ) -> None:
        self._ready()
        model_dir = model.path
        if not model_dir:
            registered = self.get_model(model.name, model.version)
            if registered is None:
                raise BackendError(f"model {model.name} version {model.version} is not registered", code="not_found")
            model_dir = registered.path
        self.endpoints.begin_deployment(endpoint, deployment, model, model_dir, instance_type, instance_count)

    def get_deployment(self, endpoint: str, deployment: str) -> DeploymentState:
        self._ready()
        return self.endpoints.get_deployment(endpoint, deployment)

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        self._ready()
        self.endpoints.set_traffic(endpoint, traffic)

    def begin_delete_deployment(self, endpoint: str, deployment: str) -> None:
        self._ready()
        self.endpoints.begin_delete_deployment(endpoint, deployment)

    def begin_delete_endpoint(self, endpoint: str) -> None:
        self._ready()
        self.endpoints.begin_delete_endpoint(endpoint)

    # scoring ----------------------------------------------------------------------------------------------
    def scoring_target(self, endpoint: str, deployment: str | None = None) -> ScoringTarget:
        """URI + key header from the endpoint's files (cheap: no process checks); never logged."""
        data = read_json(self.layout.endpoint(endpoint) / "endpoint.json")
        if data is None:
            raise BackendError(f"endpoint {endpoint} not found", code="not_found")
        headers = {"Authorization": f"Bearer {self.endpoints.key(endpoint)}"}
        if deployment:
            headers[PIN_HEADER] = deployment
        return ScoringTarget(uri=f"http://127.0.0.1:{data['port']}/score", headers=headers, deployment=deployment or "")

    def invoke(self, target: ScoringTarget, payload: dict[str, Any], timeout: float = 60.0) -> Any:
        import httpx

        try:
            response = httpx.post(target.uri, json=payload, headers=target.headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"the endpoint at {target.uri} did not answer: {type(exc).__name__}", retryable=True
            ) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", response.text)
            except (ValueError, AttributeError):
                detail = response.text
            raise BackendError(
                f"scoring failed with HTTP {response.status_code}: {str(detail)[:500]}",
                retryable=response.status_code in (429, 502, 503, 504),
                code=f"http_{response.status_code}",
            )
        return response.json()

    def endpoint_last_request(self, endpoint: str) -> str | None:
        return self.endpoints.last_request(endpoint)
