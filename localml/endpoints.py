"""Local online endpoints: one light router process per endpoint, one model server process per deployment.

Why this shape: an Azure ML endpoint has one stable scoring URI and a key, and spreads requests over its
deployments by traffic weight (or to the one named in ``azureml-model-deployment``). Locally the router
(stdlib only, ``router.py``) owns the endpoint's port and key check; each deployment is a model server
(``server.py``, torch) on its own port that loads the MLflow model and says when it is ready. Provisioning is
asynchronous like Azure's: ``begin_deployment`` returns at once in Creating; the server itself flips its
deployment to Succeeded (loaded and answered a probe) or Failed (with the reason).

The key lives only in ``endpoints/{name}/key.json`` (mode 600), like Azure keeps it in the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from localml.layout import Layout
from localml.naming import check_deployment_name, check_endpoint_name
from localml.state import (
    alive,
    claim,
    file_lock,
    listening_socket,
    read_json,
    spawn,
    stop,
    update_json,
    write_json,
)
from shared.backends.base import (
    MANAGED_TAG,
    BackendError,
    DeploymentPhase,
    DeploymentState,
    EndpointInfo,
    ModelVersion,
)
from shared.timeutil import iso

log = logging.getLogger("autotune.local.endpoints")

SHUTDOWN_REASON = "stopped with the host"  # marks processes to bring back when a host starts again


class EndpointManager:
    def __init__(self, layout: Layout, child_env: dict[str, str]):
        self.layout = layout
        self.child_env = child_env
        self.owned: set[Path] = set()  # process record files of the routers and servers we started or adopted

    # files ------------------------------------------------------------------------------------------------
    def _lock(self, endpoint: str):
        return file_lock(self.layout.endpoints / f".{endpoint}.lock")

    def _endpoint(self, name: str) -> dict[str, Any] | None:
        return read_json(self.layout.endpoint(name) / "endpoint.json")

    def _deployments(self, endpoint: str) -> list[str]:
        folder = self.layout.endpoint(endpoint) / "deployments"
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "deployment.json").exists())

    def key(self, endpoint: str) -> str:
        data = read_json(self.layout.endpoint(endpoint) / "key.json") or {}
        if not data.get("primary_key"):
            raise BackendError(f"endpoint {endpoint} not found", code="not_found")
        return data["primary_key"]

    def info(self, name: str) -> EndpointInfo | None:
        data = self._endpoint(name)
        if data is None:
            return None
        router = read_json(self.layout.endpoint(name) / "router.json")
        state = data.get("state", "Succeeded")
        if state == "Succeeded" and not alive(router):
            state = "Failed"
        return EndpointInfo(
            name=name,
            scoring_uri=f"http://127.0.0.1:{data['port']}/score",
            state=state,
            tags=dict(data.get("tags") or {}),
            traffic={k: int(v) for k, v in (data.get("traffic") or {}).items()},
            deployments=tuple(self._deployments(name)),
        )

    # endpoints --------------------------------------------------------------------------------------------
    def begin_endpoint(self, name: str, tags: dict[str, str]) -> EndpointInfo:
        check_endpoint_name(name)
        folder = self.layout.endpoint(name)
        with self._lock(name):
            data = self._endpoint(name)
            if data is None:
                folder.mkdir(parents=True, exist_ok=True)
                key_path = folder / "key.json"
                write_json(key_path, {"primary_key": secrets.token_urlsafe(32)})
                os.chmod(key_path, 0o600)
                data = {"name": name, "created_at": iso(), "tags": {}, "traffic": {}, "port": 0}
            data["tags"] = {**(data.get("tags") or {}), **tags, MANAGED_TAG: "true"}
            data["state"] = "Succeeded"
            write_json(folder / "endpoint.json", data)
            self._ensure_router(name)
        info = self.info(name)
        assert info is not None
        return info

    def _ensure_router(self, name: str) -> None:
        """Start the endpoint's router unless it runs (on its recorded port when free: the URI stays stable)."""
        folder = self.layout.endpoint(name)
        record_path = folder / "router.json"
        if alive(read_json(record_path)):
            if claim(record_path):
                self.owned.add(record_path)
            return
        data = self._endpoint(name) or {}
        sock = listening_socket(int(data.get("port") or 0))
        try:
            port = sock.getsockname()[1]
            record = spawn("localml.router", [str(folder)], folder / "router.log", listen=sock)
        finally:
            sock.close()
        record["port"] = port
        write_json(record_path, record)
        if port != data.get("port"):
            update_json(folder / "endpoint.json", port=port)
        self.owned.add(record_path)

    def list_managed(self) -> list[EndpointInfo]:
        if not self.layout.endpoints.exists():
            return []
        out = []
        for folder in sorted(self.layout.endpoints.iterdir()):
            info = self.info(folder.name) if folder.is_dir() else None
            if info is not None and info.managed:
                out.append(info)
        return out

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        with self._lock(endpoint):
            if self._endpoint(endpoint) is None:
                raise BackendError(f"endpoint {endpoint} not found", code="not_found")
            existing = set(self._deployments(endpoint))
            unknown = sorted(set(traffic) - existing)
            if unknown:
                raise BackendError(
                    f"traffic names deployments that do not exist on {endpoint}: {', '.join(unknown)}",
                    code="invalid_traffic",
                )
            weights = {name: int(value) for name, value in traffic.items()}
            if any(value < 0 or value > 100 for value in weights.values()) or sum(weights.values()) not in (0, 100):
                raise BackendError(
                    f"traffic weights must be 0-100 and add up to 100 (or 0), got {weights}", code="invalid_traffic"
                )
            update_json(self.layout.endpoint(endpoint) / "endpoint.json", traffic=weights)

    def begin_delete_endpoint(self, endpoint: str) -> None:
        folder = self.layout.endpoint(endpoint)
        with self._lock(endpoint):
            if self._endpoint(endpoint) is None:
                return
            update_json(folder / "endpoint.json", state="Deleting")
            for deployment in self._deployments(endpoint):
                self._stop_server(endpoint, deployment)
            record_path = folder / "router.json"
            stop(read_json(record_path), timeout=5)
            self.owned.discard(record_path)
            shutil.rmtree(folder, ignore_errors=True)
        log.info("endpoint %s deleted", endpoint)

    # deployments ------------------------------------------------------------------------------------------
    def begin_deployment(
        self, endpoint: str, deployment: str, model: ModelVersion, model_dir: str, instance_type: str, count: int
    ) -> None:
        check_deployment_name(deployment)
        with self._lock(endpoint):
            if self._endpoint(endpoint) is None:
                raise BackendError(f"endpoint {endpoint} not found; create it first", code="not_found")
            folder = self.layout.deployment(endpoint, deployment)
            current = read_json(folder / "deployment.json")
            same_model = (
                current
                and current.get("model_version") == str(model.version)
                and (current.get("model_name") == model.name)
            )
            if (
                same_model
                and current.get("phase") in ("creating", "succeeded")
                and alive(read_json(folder / "server.json"))
            ):
                return  # already deploying or deployed: idempotent
            if current:
                self._stop_server(endpoint, deployment, remove=False)
            spec = {
                "endpoint": endpoint,
                "name": deployment,
                "model_name": model.name,
                "model_version": str(model.version),
                "model_path": model_dir,
                "instance_type": instance_type,
                "instance_count": int(count),
                "created_at": (current or {}).get("created_at") if same_model else iso(),
                "updated_at": iso(),
                "phase": "creating",
                "error": "",
            }
            spec["created_at"] = spec["created_at"] or iso()
            write_json(folder / "deployment.json", spec)
            self._start_server(endpoint, deployment)
        log.info("deployment %s/%s of %s:%s creating", endpoint, deployment, model.name, model.version)

    def _start_server(self, endpoint: str, deployment: str) -> None:
        folder = self.layout.deployment(endpoint, deployment)
        sock = listening_socket()
        try:
            port = sock.getsockname()[1]
            record = spawn("localml.server", [str(folder)], folder / "log.txt", listen=sock)
        finally:
            sock.close()
        record["port"] = port
        write_json(folder / "server.json", record)
        self.owned.add(folder / "server.json")

    def _stop_server(self, endpoint: str, deployment: str, *, remove: bool = True) -> None:
        folder = self.layout.deployment(endpoint, deployment)
        record_path = folder / "server.json"
        stop(read_json(record_path), timeout=5)
        self.owned.discard(record_path)
        if remove:
            shutil.rmtree(folder, ignore_errors=True)

    def get_deployment(self, endpoint: str, deployment: str) -> DeploymentState:
        folder = self.layout.deployment(endpoint, deployment)
        data = read_json(folder / "deployment.json")
        if data is None:
            return DeploymentState(endpoint, deployment, DeploymentPhase.NOT_FOUND)
        if data.get("phase") in ("creating", "succeeded") and not alive(read_json(folder / "server.json")):
            data = read_json(folder / "deployment.json") or data  # it may have written its verdict as it exited
            if data.get("phase") in ("creating", "succeeded"):
                data = update_json(
                    folder / "deployment.json",
                    phase="failed",
                    error=f"the scoring server process exited unexpectedly; see {folder / 'log.txt'}",
                )
        phase = data.get("phase", "creating")
        return DeploymentState(
            endpoint=endpoint,
            name=deployment,
            phase=DeploymentPhase("creating" if phase == "stopped" else phase),  # stopped: comes back on adoption
            error=data.get("error", ""),
            model_version=data.get("model_version", ""),
            created_at=data.get("created_at", ""),
        )

    def begin_delete_deployment(self, endpoint: str, deployment: str) -> None:
        with self._lock(endpoint):
            data = self._endpoint(endpoint)
            if data is None or not (self.layout.deployment(endpoint, deployment) / "deployment.json").exists():
                return
            if int((data.get("traffic") or {}).get(deployment, 0)) > 0:
                raise BackendError(
                    f"deployment {deployment} of {endpoint} still has {data['traffic'][deployment]}% of the traffic; "
                    "move the traffic first",
                    code="conflict",
                )
            traffic = {k: v for k, v in (data.get("traffic") or {}).items() if k != deployment}
            update_json(self.layout.endpoint(endpoint) / "endpoint.json", traffic=traffic)
            self._stop_server(endpoint, deployment)
        log.info("deployment %s/%s deleted", endpoint, deployment)

    def last_request(self, endpoint: str) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.layout.endpoint(endpoint) / "last_request").read_text().strip() or None
        return None

    # adoption and shutdown --------------------------------------------------------------------------------
    def adopt(self) -> None:
        """After a (re)start: keep what still runs, bring back what our last shutdown stopped, fail the rest."""
        if not self.layout.endpoints.exists():
            return
        for folder in sorted(self.layout.endpoints.iterdir()):
            if not folder.is_dir() or self._endpoint(folder.name) is None:
                continue
            name = folder.name
            with self._lock(name):
                if (self._endpoint(name) or {}).get("state") == "Deleting":
                    continue
                self._ensure_router(name)
                for deployment in self._deployments(name):
                    self._adopt_deployment(name, deployment)

    def _adopt_deployment(self, endpoint: str, deployment: str) -> None:
        folder = self.layout.deployment(endpoint, deployment)
        data = read_json(folder / "deployment.json") or {}
        record_path = folder / "server.json"
        if alive(read_json(record_path)):
            if claim(record_path):
                self.owned.add(record_path)
        elif data.get("phase") == "stopped":
            update_json(folder / "deployment.json", phase="creating", error="", updated_at=iso())
            self._start_server(endpoint, deployment)
        else:
            self.get_deployment(endpoint, deployment)  # marks a vanished server failed

    def shutdown(self) -> None:
        """Stop every process this manager owns; deployments come back when a host adopts them again."""
        for record_path in sorted(self.owned):
            record = read_json(record_path)
            if not alive(record):
                continue
            stop(record, timeout=5)
            if record_path.name == "server.json":
                spec_path = record_path.with_name("deployment.json")
                data = read_json(spec_path) or {}
                if data.get("phase") in ("creating", "succeeded"):
                    update_json(spec_path, phase="stopped", error=SHUTDOWN_REASON)
        self.owned.clear()
