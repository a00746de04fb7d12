"""A fake of the Azure ML REST API (ARM control plane + registry data plane) behind an azure-core transport.

Why at the HTTP level: the Azure ML backend is exercised through the real ``azure-ai-ml`` client (entity
serialisation, URL building, long-running-operation polling, retries), so only the service is fake. The
shapes follow ``../shared/contracts/aml-rest-spec`` (api-versions, bodies, LRO headers ``Azure-AsyncOperation``
on create, ``Location`` on delete); registry discovery and registry model/component reads are not in that
subset and are shaped after what ``azure-ai-ml`` 1.35 parses (``_utils/_registry_utils.py``, ``Model`` and
``Component`` ``_from_rest_object``). Every ARM request is checked against that spec first
(``tests/fakes/aml_spec.py``): an api-version the operation does not have, or a body its schema refuses (type,
required, enum, format), is answered 400 as Azure would and kept in ``fake.violations``. Quirks of the SDK
honoured here: model answers always carry ``flavors``; computes always carry their ``properties``.

Use: ``fake = FakeAzureML(); MLClient(cred, sub, rg, ws, transport=fake.transport())``. Every request is
recorded in ``fake.requests`` (method, path, query, parsed JSON body) so tests assert request shapes.
Long operations stay pending until ``fake.settle()``; ``fake.inject(...)`` answers the next matching
requests with an error (429, 503, 403, ...).
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from tests.fakes.aml_spec import rest_spec

ARM = "https://management.azure.com"
DISCOVERY_HOST = "eastus.api.azureml.ms"
REGISTRY_SUBSCRIPTION = "5c9f4c1e-0000-0000-0000-00000000a2e1"
REGISTRY_RESOURCE_GROUP = "registry-builtin-prod-eastus-01"
MLS = "providers/Microsoft.MachineLearningServices"
INPUTS_JSON = Path(__file__).resolve().parents[2] / "shared" / "backends" / "chat_completion_inputs.json"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _system_data() -> dict[str, Any]:
    now = _now()
    return {
        "createdAt": now,
        "createdBy": "autotune-identity",
        "createdByType": "ManagedIdentity",
        "lastModifiedAt": now,
        "lastModifiedBy": "autotune-identity",
        "lastModifiedByType": "ManagedIdentity",
    }


def _error(status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, {}


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class _Fault:
    method: str
    contains: str
    status: int
    remaining: int
    body: Any
    headers: dict[str, str]


@dataclass
class _Operation:
    """A pending long-running operation; ``finish`` applies its effect when settled."""

    id: str
    kind: str
    target: tuple[str, ...]
    status: str = "InProgress"
    error: dict[str, str] | None = None
    finish: Callable[[], None] | None = None


@dataclass
class FakeAzureML:
    """In-memory Azure ML workspace + the ``azureml`` registry, speaking REST."""

    subscription: str = "00000000-1111-2222-3333-444444444444"
    resource_group: str = "rg-autotune"
    workspace: str = "ws-autotune"
    location: str = "eastus2"
    registry: str = "azureml"
    requests: list[Recorded] = field(default_factory=list)
    unrouted: list[Recorded] = field(default_factory=list)
    # Requests the REST spec subset refused (what Azure would answer 400), and what it could not check.
    violations: list[tuple[Recorded, str]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    registry_models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    registry_components: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    computes: dict[str, dict[str, Any]] = field(default_factory=dict)
    vm_sizes: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    metrics: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    operations: dict[str, _Operation] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    deployment_logs: dict[tuple[str, str], str] = field(default_factory=dict)
    # Run history: run id -> (status, error message), and a pipeline's step runs.
    run_errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    child_runs: dict[str, list[str]] = field(default_factory=dict)
    # What a scoring request gets: (endpoint, deployment or None, request body) -> answer body.
    scorer: Callable[[str, str | None, Any], Any] = lambda endpoint, deployment, body: {
        "output": f"hello from {endpoint}"
    }

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._routes = self._build_routes()

    # ------------------------------------------------------------------------------------------- ids
    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/{MLS}/workspaces/{self.workspace}"
        )

    @property
    def registry_base(self) -> str:
        return f"https://cert-{self.location}.experiments.azureml.net/mferp/managementfrontend"

    def registry_asset_id(self, kind: str, name: str, version: str) -> str:
        # The registry data plane answers with azureml:// ids (what the notebook's foundation_model.id shows).
        return f"azureml://registries/{self.registry}/{kind}/{name}/versions/{version}"

    # ------------------------------------------------------------------------------------------- seeding
    def add_registry_model(
        self,
        name: str,
        version: str,
        *,
        tags: dict[str, str] | None = None,
        archived: bool = False,
        properties: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "id": self.registry_asset_id("models", name, version),
            "name": version,
            "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "properties": {
                "description": f"{name} (fake registry)",
                "tags": dict(tags or {}),
                "properties": dict(properties or {}),
                "isArchived": archived,
                "isAnonymous": False,
                "flavors": {"transformers": {"data": {"task": "chat-completion"}}},
                "modelType": "mlflow_model",
                "modelUri": f"azureml://registries/{self.registry}/models/{name}/versions/{version}",
                "stage": "Archived" if archived else "Production",
            },
            "systemData": _system_data(),
        }
        self.registry_models[(name, version)] = body
        return body

    def add_pipeline_component(self, version: str = "0.0.82", name: str = "chat_completion_pipeline") -> None:
        """The registry's pipeline component, its interface taken from the committed inputs copy."""
        spec = json.loads(INPUTS_JSON.read_text(encoding="utf-8"))
        inputs = {}
        for input_name, entry in spec["inputs"].items():
            item = {key: entry[key] for key in ("type", "optional", "default", "enum", "min", "max") if key in entry}
            inputs[input_name] = item
        component_spec = {
            "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json",
            "name": name,
            "version": version,
            "type": "pipeline",
            "display_name": "Chat Completion Pipeline",
            "inputs": inputs,
            "outputs": {out: {"type": kind} for out, kind in spec["outputs"].items()},
            "jobs": {},
        }
        self.registry_components[(name, version)] = {
            "id": self.registry_asset_id("components", name, version),
            "name": version,
            "type": "Microsoft.MachineLearningServices/registries/components/versions",
            "properties": {
                "description": "Pipeline Component to finetune Hugging Face pretrained models for chat completion",
                "tags": {},
                "properties": {},
                "isArchived": False,
                "isAnonymous": False,
                "componentSpec": component_spec,
            },
            "systemData": _system_data(),
        }

    def add_compute(
        self, name: str, vm_size: str, *, state: str = "Succeeded", compute_type: str = "AmlCompute", bare=False
    ) -> None:
        properties: dict[str, Any] = {
            "computeType": compute_type,
            "computeLocation": self.location,
            "provisioningState": state,
            "description": "",
            "isAttachedCompute": False,
            "disableLocalAuth": True,
        }
        if compute_type == "AmlCompute":
            properties["properties"] = {
                "vmSize": vm_size,
                "vmPriority": "Dedicated",
                "osType": "Linux",
                "scaleSettings": {"maxNodeCount": 2, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT120S"},
                "remoteLoginPortPublicAccess": "Disabled",
                "allocationState": "Steady",
                "currentNodeCount": 0,
                "targetNodeCount": 0,
            }
        self.computes[name] = {
            "id": f"{self.workspace_id}/computes/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": self.location,
            "properties": {} if bare else properties,
            "systemData": _system_data(),
        }

    def add_vm_size(self, name: str, gpus: int, *, vcpus: int = 24, memory_gb: float = 220) -> None:
        self.vm_sizes.append(
            {
                "name": name,
                "family": "StandardNCADSA100v4Family",
                "vCPUs": vcpus,
                "gpus": gpus,
                "osVhdSizeMB": 1047552,
                "maxResourceVolumeMB": 65536,
                "memoryGB": memory_gb,
                "lowPriorityCapable": True,
                "premiumIO": True,
                "supportedComputeTypes": ["AmlCompute", "ComputeInstance"],
            }
        )

    def seed_notebook_world(self, *, archived_base: bool = False) -> None:
        """The notebook's world: Phi-3-mini (and BASE_MODEL's default) in the registry, the pipeline component, an
        A100 cluster."""
        tags = {
            "FinetuneRetirementDate": "2025-08-30",
            "model_specific_defaults": (
                "{'apply_deepspeed': 'true', 'deepspeed_stage': 2, 'apply_lora': 'true', 'apply_ort': 'false', "
                "'precision': 16, 'ignore_mismatched_sizes': 'false', 'num_train_epochs': 1, "
                "'per_device_train_batch_size': 1, 'per_device_eval_batch_size': 1, "
                "'gradient_accumulation_steps': 1, 'learning_rate': '5e-6', 'learning_rate_min': '5e-7', "
                "'learning_rate_max': '5e-5', 'lr_scheduler_type': 'cosine', 'logging_strategy': 'steps', "
                "'logging_steps': 10, 'save_total_limit': 1}"
            ),
            "finetune_compute_allow_list": (
                "['Standard_NC24ads_A100_v4', 'Standard_NC48ads_A100_v4', 'Standard_NC96ads_A100_v4', "
                "'Standard_ND96asr_v4', 'Standard_ND96amsr_A100_v4']"
            ),
            "inference_compute_allow_list": (
                "['Standard_NC6s_v3', 'Standard_NC12s_v3', 'Standard_NC24s_v3', 'Standard_ND40rs_v2', "
                "'Standard_NC24ads_A100_v4', 'Standard_NC48ads_A100_v4', 'Standard_ND96asr_v4', "
                "'Standard_ND96amsr_A100_v4', 'Standard_NC96ads_A100_v4']"
            ),
            "task": "chat-completion",
        }
        if not archived_base:
            tags.pop("FinetuneRetirementDate")
        self.add_registry_model("Phi-3-mini-4k-instruct", "15", tags=tags, archived=archived_base)
        # BASE_MODEL's default (the notebook's Phi-3-mini is retired for fine-tuning): the same card shape.
        current = {key: value for key, value in tags.items() if key != "FinetuneRetirementDate"}
        self.add_registry_model(
            "Phi-4-mini-instruct", "7", tags=current, properties={"finetuning-tasks": "chat-completion"}
        )
        self.add_pipeline_component("0.0.82")
        self.add_compute("gpu-cluster", "Standard_NC24ads_A100_v4")
        self.add_vm_size("Standard_NC24ads_A100_v4", gpus=1)
        self.add_vm_size("Standard_NC48ads_A100_v4", gpus=2, vcpus=48, memory_gb=440)
        self.add_vm_size("Standard_NC6", gpus=1, vcpus=6, memory_gb=56)
        self.add_vm_size("Standard_D4s_v3", gpus=0, vcpus=4, memory_gb=16)

    # ------------------------------------------------------------------------------------------- driving
    def inject(
        self,
        method: str,
        contains: str,
        status: int,
        *,
        times: int = 1,
        code: str = "",
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``contains`` with ``status``."""
        body = {"error": {"code": code or f"Http{status}", "message": message or f"injected {status}"}}
        self.faults.append(_Fault(method.upper(), contains, status, times, body, dict(headers or {})))

    def set_job_status(self, name: str, status: str) -> None:
        self.jobs[name]["properties"]["status"] = status

    def fail_job(self, name: str, message: str, *, step: str = "", step_message: str = "") -> None:
        """The pipeline failed with ``message``; optionally its step ``step`` failed with ``step_message``."""
        self.set_job_status(name, "Failed")
        self.run_errors[name] = ("Failed", message)
        if step:
            child = f"{name}-{step}"
            self.child_runs.setdefault(name, []).append(child)
            self.run_errors[child] = ("Failed", step_message)

    def settle(self) -> None:
        """Finish every pending long-running operation successfully (a deployment takes 10-30 min in Azure)."""
        with self._lock:
            for op in list(self.operations.values()):
                if op.status == "InProgress":
                    op.status = "Succeeded"
                    if op.finish:
                        op.finish()

    def fail_deployment(self, endpoint: str, deployment: str, code: str, message: str) -> None:
        with self._lock:
            for op in self.operations.values():
                if op.kind == "deployment" and op.target == (endpoint, deployment) and op.status == "InProgress":
                    op.status = "Failed"
                    op.error = {"code": code, "message": message}
            self.deployments[(endpoint, deployment)]["properties"]["provisioningState"] = "Failed"

    def add_metric(self, endpoint: str, minute_iso: str, total: float) -> None:
        self.metrics.setdefault(endpoint, []).append((minute_iso, total))

    def find(self, method: str, contains: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method.upper() and contains in r.path]

    # ------------------------------------------------------------------------------------------- transport
    def transport(self):
        """An azure-core ``RequestsTransport`` whose session answers from this fake (no network)."""
        from azure.core.pipeline.transport import RequestsTransport

        session = requests.Session()
        adapter = _Adapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return RequestsTransport(session=session, session_owner=False)

    def handle(self, method: str, url: str, headers: dict[str, str], raw_body: bytes | None):
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body
        record = Recorded(method.upper(), url, parts.netloc, parts.path, query, dict(headers), body)
        with self._lock:
            self.requests.append(record)
            status, payload, extra = self._dispatch(record)
        record.status = status
        return status, payload, extra

    def _dispatch(self, r: Recorded) -> tuple[int, Any, dict[str, str]]:
        if r.host.lower() == "management.azure.com":
            # As Azure would: an api-version the operation lacks, or a body its schema refuses, is a 400.
            problem, notes = rest_spec().check(r.method, r.path, r.query, r.body)
            self.unchecked.extend(notes)
            if problem is not None:
                self.violations.append((r, problem.message))
                return _error(problem.status, problem.code, problem.message)
        for fault in self.faults:
            if fault.remaining > 0 and fault.method == r.method and fault.contains in r.path:
                fault.remaining -= 1
                return fault.status, fault.body, fault.headers
        for method, pattern, handler in self._routes:
            if method != r.method:
                continue
            match = pattern.fullmatch(r.host + r.path)
            if match:
                return handler(r, **match.groupdict())
        self.unrouted.append(r)
        return _error(404, "NoRoute", f"fake Azure ML has no route for {r.method} {r.path}")

    # ------------------------------------------------------------------------------------------- routes
    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        ws_path = (
            r"subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+"
        )
        ws = r"management\.azure\.com/" + ws_path
        history = r"[^/]+\.api\.azureml\.ms/history/v1\.0/" + ws_path
        reg = r"cert-[^/]+\.experiments\.azureml\.net/mferp/managementfrontend/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/registries/(?P<registry>[^/]+)"  # noqa: E501
        table = [
            ("GET", r"[^/]+/registrymanagement/v1\.0/registries/(?P<name>[^/]+)/discovery", self._discovery),
            ("GET", reg + r"/models/(?P<name>[^/]+)/versions", self._registry_list("models")),
            ("GET", reg + r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._registry_get("models")),
            ("GET", reg + r"/components/(?P<name>[^/]+)/versions", self._registry_list("components")),
            ("GET", reg + r"/components/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._registry_get("components")),
            ("GET", ws, self._workspace_get),
            ("GET", r"[^/]+\.api\.azureml\.ms/discovery", self._workspace_discovery),
            ("GET", history + r"/runs/(?P<run>[^/]+)/details", self._run_details),
            ("GET", history + r"/runs/(?P<run>[^/]+)/children", self._run_children),
            ("GET", ws + r"/computes/(?P<name>[^/]+)", self._compute_get),
            (
                "GET",
                r"management\.azure\.com/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/(?P<location>[^/]+)/vmSizes",
                self._vm_sizes,
            ),
            ("PUT", ws + r"/jobs/(?P<name>[^/]+)", self._job_put),
            ("GET", ws + r"/jobs/(?P<name>[^/]+)", self._job_get),
            ("GET", ws + r"/jobs", self._job_list),
            ("POST", ws + r"/jobs/(?P<name>[^/]+)/cancel", self._job_cancel),
            ("GET", ws + r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._asset_get(self.data)),
            ("PUT", ws + r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._data_put),
            ("GET", ws + r"/models/(?P<name>[^/]+)/versions", self._model_list),
            ("GET", ws + r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._asset_get(self.models)),
            ("PUT", ws + r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._model_put),
            ("GET", ws + r"/onlineEndpoints", self._endpoint_list),
            ("GET", ws + r"/onlineEndpoints/(?P<name>[^/]+)", self._endpoint_get),
            ("PUT", ws + r"/onlineEndpoints/(?P<name>[^/]+)", self._endpoint_put),
            ("DELETE", ws + r"/onlineEndpoints/(?P<name>[^/]+)", self._endpoint_delete),
            ("POST", ws + r"/onlineEndpoints/(?P<name>[^/]+)/listKeys", self._endpoint_keys),
            ("POST", ws + r"/onlineEndpoints/(?P<name>[^/]+)/token", self._endpoint_token),
            ("GET", ws + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments", self._deployment_list),
            ("GET", ws + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)", self._deployment_get),
            ("PUT", ws + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)", self._deployment_put),
            (
                "DELETE",
                ws + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)",
                self._deployment_delete,
            ),
            (
                "POST",
                ws + r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)/getLogs",
                self._deployment_logs,
            ),
            ("POST", r"(?P<name>[^./]+)\.[^./]+\.inference\.ml\.azure\.com/score", self._score),
            (
                "GET",
                ws + r"/onlineEndpoints/(?P<name>[^/]+)/providers/Microsoft\.Insights/metrics",
                self._metrics,
            ),
            (
                "GET",
                r"management\.azure\.com/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+/mfeOperation(?:s(?P<kind>Status)|(?P<kind2>Result)s)/(?P<op>[^/]+)",
                self._operation,
            ),
        ]
        return [(method, re.compile(pattern, re.IGNORECASE), handler) for method, pattern, handler in table]

    # registry ----------------------------------------------------------------------------------------------
    def _discovery(self, r: Recorded, name: str):
        if name != self.registry:
            return _error(404, "RegistryNotFound", f"registry {name} not found")
        return (
            200,
            {
                "registryName": name,
                "primaryRegion": self.location,
                "regions": [self.location],
                "subscriptionId": REGISTRY_SUBSCRIPTION,
                "resourceGroup": REGISTRY_RESOURCE_GROUP,
                "primaryRegionResourceProviderUri": f"https://cert-{self.location}.experiments.azureml.net/",
                "registryFqdns": {self.location: {"default": f"{self.location}.api.azureml.ms"}},
            },
            {},
        )

    def _registry_store(self, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        return self.registry_models if kind == "models" else self.registry_components

    def _registry_list(self, kind: str):
        def handler(r: Recorded, registry: str, name: str):
            # Archived versions are left out of a plain listing (listViewType defaults to ActiveOnly).
            items = [
                body
                for (n, _), body in self._registry_store(kind).items()
                if n == name and (not body["properties"].get("isArchived") or r.query.get("listViewType") == "All")
            ]
            items.sort(key=lambda body: body["systemData"]["createdAt"], reverse=True)
            top = int(r.query.get("$top", len(items) or 1))
            return 200, {"value": items[:top], "nextLink": None}, {}

        return handler

    def _registry_get(self, kind: str):
        def handler(r: Recorded, registry: str, name: str, version: str):
            body = self._registry_store(kind).get((name, version))
            if body is None:
                return _error(404, "ResourceNotFound", f"{kind[:-1]} {name}:{version} not found in {registry}")
            return 200, body, {}

        return handler

    # workspace, compute ------------------------------------------------------------------------------------
    def _workspace_get(self, r: Recorded):
        return (
            200,
            {
                "id": self.workspace_id,
                "name": self.workspace,
                "type": "Microsoft.MachineLearningServices/workspaces",
                "location": self.location,
                "kind": "Default",
                "tags": {},
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=1)), "tenantId": "t"},
                "sku": {"name": "Basic", "tier": "Basic"},
                "properties": {
                    "friendlyName": self.workspace,
                    "workspaceId": "5f3e0b1a-0000-4000-8000-0000000000ws",
                    "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
                    "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                    "provisioningState": "Succeeded",
                    "publicNetworkAccess": "Enabled",
                },
                "systemData": _system_data(),
            },
            {},
        )

    def _workspace_discovery(self, r: Recorded):
        api = f"https://{self.location}.api.azureml.ms"
        return 200, {"api": api, "catalog": api, "experimentation": api, "history": api, "modelmanagement": api}, {}

    def _run_body(self, run: str) -> dict[str, Any]:
        status, message = self.run_errors.get(run, ("Running", ""))
        body: dict[str, Any] = {
            "runId": run,
            "displayName": run.rsplit("-", 1)[-1] if run not in self.jobs else run,
            "status": status,
            "runType": "azureml.StepRun" if run not in self.jobs else "azureml.PipelineRun",
            "properties": {},
            "tags": {},
        }
        if message:
            body["error"] = {"error": {"code": "UserError", "message": message}}
        return body

    def _run_details(self, r: Recorded, run: str):
        if run not in self.jobs and run not in self.run_errors:
            return _error(404, "RunNotFound", f"run {run} not found")
        return 200, self._run_body(run), {}

    def _run_children(self, r: Recorded, run: str):
        return 200, {"value": [self._run_body(child) for child in self.child_runs.get(run, [])], "nextLink": None}, {}

    def _compute_get(self, r: Recorded, name: str):
        body = self.computes.get(name)
        if body is None:
            return _error(404, "ResourceNotFound", f"The Resource 'computes/{name}' was not found.")
        return 200, body, {}

    def _vm_sizes(self, r: Recorded, location: str):
        return 200, {"value": self.vm_sizes}, {}

    # jobs ---------------------------------------------------------------------------------------------------
    def _job_put(self, r: Recorded, name: str):
        if name in self.jobs:
            return _error(400, "UserError", f"A job with this name already exists: {name}")
        props = dict(r.body["properties"])
        props["status"] = "NotStarted"
        props.setdefault("tags", {})
        props["services"] = {
            "Studio": {
                "jobServiceType": "Studio",
                "endpoint": f"https://ml.azure.com/runs/{name}?wsid={self.workspace_id}",
            }
        }
        body = {
            "id": f"{self.workspace_id}/jobs/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": props,
            "systemData": _system_data(),
        }
        self.jobs[name] = body
        return 201, body, {}

    def _job_get(self, r: Recorded, name: str):
        body = self.jobs.get(name)
        if body is None:
            return _error(404, "UserError", f"Job {name} not found")
        return 200, body, {}

    def _job_list(self, r: Recorded):
        """Jobs_List filters: ``tag`` (a tag key) and ``properties`` ("name" or "name=value", comma-separated)."""
        items = list(self.jobs.values())
        if r.query.get("tag"):
            items = [job for job in items if r.query["tag"] in (job["properties"].get("tags") or {})]
        for wanted in filter(None, r.query.get("properties", "").split(",")):
            key, has_value, value = wanted.partition("=")
            items = [
                job
                for job in items
                if key in (job["properties"].get("properties") or {})
                and (not has_value or job["properties"]["properties"][key] == value)
            ]
        return 200, {"value": items, "nextLink": None}, {}

    def _job_cancel(self, r: Recorded, name: str):
        job = self.jobs.get(name)
        if job is None:
            return _error(404, "UserError", f"Job {name} not found")
        job["properties"]["status"] = "CancelRequested"
        op = self._new_operation("job-cancel", (name,), lambda: self.set_job_status(name, "Canceled"))
        return 202, None, {"Location": self._operation_url(op, "Result"), "Retry-After": "0"}

    # assets ------------------------------------------------------------------------------------------------
    def _asset_get(self, store: dict[tuple[str, str], dict[str, Any]]):
        def handler(r: Recorded, name: str, version: str):
            body = store.get((name, version))
            if body is None:
                return _error(404, "UserError", f"asset {name}:{version} not found")
            return 200, body, {}

        return handler

    def _asset_body(self, kind: str, name: str, version: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{self.workspace_id}/{kind}/{name}/versions/{version}",
            "name": version,
            "type": f"Microsoft.MachineLearningServices/workspaces/{kind}/versions",
            "properties": properties,
            "systemData": _system_data(),
        }

    def _data_put(self, r: Recorded, name: str, version: str):
        existing = self.data.get((name, version))
        if existing and existing["properties"].get("dataUri") != r.body["properties"].get("dataUri"):
            return _error(409, "Conflict", f"data {name}:{version} exists with another path; versions are immutable")
        body = self._asset_body("data", name, version, dict(r.body["properties"]))
        self.data[(name, version)] = body
        return (200 if existing else 201), body, {}

    def _model_list(self, r: Recorded, name: str):
        items = [body for (n, _), body in self.models.items() if n == name]
        return 200, {"value": items, "nextLink": None}, {}

    def _model_put(self, r: Recorded, name: str, version: str):
        if (name, version) in self.models:
            return _error(409, "Conflict", f"model {name}:{version} already exists")
        props = dict(r.body["properties"])
        if not props.get("flavors"):  # the service reads them from MLmodel; the SDK needs them in the answer
            props["flavors"] = {"python_function": {"data": {"loader_module": "mlflow.transformers"}}}
        body = self._asset_body("models", name, version, props)
        self.models[(name, version)] = body
        return 201, body, {}

    # endpoints ---------------------------------------------------------------------------------------------
    def _endpoint_body(self, name: str, request: dict[str, Any], state: str) -> dict[str, Any]:
        props = dict(request.get("properties") or {})
        props.update(
            {
                "provisioningState": state,
                "scoringUri": f"https://{name}.{self.location}.inference.ml.azure.com/score",
                "swaggerUri": f"https://{name}.{self.location}.inference.ml.azure.com/swagger.json",
            }
        )
        props.setdefault("traffic", {})
        props.setdefault("authMode", "Key")
        # The service always answers with its own properties (the SDK iterates them).
        props["properties"] = {
            **(props.get("properties") or {}),
            "azureml.onlineendpointid": f"{self.workspace_id}/onlineendpoints/{name}",
        }
        return {
            "id": f"{self.workspace_id}/onlineEndpoints/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": request.get("location") or self.location,
            "kind": request.get("kind"),
            "tags": dict(request.get("tags") or {}),
            "identity": request.get("identity") or {"type": "SystemAssigned"},
            "properties": props,
            "systemData": _system_data(),
        }

    def _endpoint_get(self, r: Recorded, name: str):
        body = self.endpoints.get(name)
        if body is None:
            return _error(404, "UserError", f"Endpoint {name} not found.")
        return 200, body, {}

    def _endpoint_list(self, r: Recorded):
        return 200, {"value": list(self.endpoints.values()), "nextLink": None}, {}

    def _endpoint_put(self, r: Recorded, name: str):
        existing = self.endpoints.get(name)
        if existing:
            body = self._endpoint_body(name, r.body, "Updating")
            body["systemData"] = existing["systemData"]
            unknown = set(body["properties"]["traffic"]) - {d for (e, d) in self.deployments if e == name}
            if unknown:
                return _error(400, "BadArgument", f"Traffic names deployments that do not exist: {sorted(unknown)}")
        else:
            body = self._endpoint_body(name, r.body, "Creating")
            self.keys[name] = {"primaryKey": uuid.uuid4().hex, "secondaryKey": uuid.uuid4().hex}
        self.endpoints[name] = body

        def finish() -> None:
            if name in self.endpoints:
                self.endpoints[name]["properties"]["provisioningState"] = "Succeeded"

        op = self._new_operation("endpoint", (name,), finish)
        return (200 if existing else 201), body, {"Azure-AsyncOperation": self._operation_url(op, "Status")}

    def _endpoint_delete(self, r: Recorded, name: str):
        body = self.endpoints.get(name)
        if body is None:
            return 204, None, {}
        body["properties"]["provisioningState"] = "Deleting"

        def finish() -> None:
            self.endpoints.pop(name, None)
            self.keys.pop(name, None)
            for key in [key for key in self.deployments if key[0] == name]:
                self.deployments.pop(key)

        op = self._new_operation("endpoint-delete", (name,), finish)
        return 202, None, {"Location": self._operation_url(op, "Result"), "Retry-After": "0"}

    def _endpoint_keys(self, r: Recorded, name: str):
        if name not in self.endpoints:
            return _error(404, "UserError", f"Endpoint {name} not found.")
        return 200, self.keys[name], {}

    def _endpoint_token(self, r: Recorded, name: str):
        if name not in self.endpoints:
            return _error(404, "UserError", f"Endpoint {name} not found.")
        return 200, {"accessToken": f"aml-token-{name}", "tokenType": "Bearer", "expiryTimeUtc": 0}, {}

    # deployments -------------------------------------------------------------------------------------------
    def _deployment_list(self, r: Recorded, endpoint: str):
        items = [body for (e, _), body in self.deployments.items() if e == endpoint]
        return 200, {"value": items, "nextLink": None}, {}

    def _deployment_get(self, r: Recorded, endpoint: str, name: str):
        body = self.deployments.get((endpoint, name))
        if body is None:
            return _error(404, "UserError", f"Deployment {name} not found on {endpoint}.")
        return 200, body, {}

    def _deployment_put(self, r: Recorded, endpoint: str, name: str):
        if endpoint not in self.endpoints:
            return _error(404, "UserError", f"Endpoint {endpoint} not found.")
        existing = self.deployments.get((endpoint, name))
        # Server-side defaults (as in the spec's ManagedOnlineDeployment get example) under what was sent.
        props = {
            "endpointComputeType": "Managed",
            "scaleSettings": {"scaleType": "Default"},
            "appInsightsEnabled": False,
            "egressPublicNetworkAccess": "Enabled",
            "requestSettings": {
                "maxQueueWait": "PT0.5S",
                "requestTimeout": "PT5S",
                "maxConcurrentRequestsPerInstance": 1,
            },
            "livenessProbe": {
                "failureThreshold": 30,
                "successThreshold": 1,
                "timeout": "PT2S",
                "period": "PT10S",
                "initialDelay": "PT10S",
            },
            "readinessProbe": {
                "failureThreshold": 30,
                "successThreshold": 1,
                "timeout": "PT2S",
                "period": "PT10S",
                "initialDelay": "PT10S",
            },
        }
        for key, value in (r.body.get("properties") or {}).items():
            props[key] = (
                {**props[key], **value} if isinstance(props.get(key), dict) and isinstance(value, dict) else value
            )
        props["provisioningState"] = "Updating" if existing else "Creating"
        body = {
            "id": f"{self.workspace_id}/onlineEndpoints/{endpoint}/deployments/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "location": r.body.get("location") or self.location,
            "kind": r.body.get("kind"),
            "tags": dict(r.body.get("tags") or {}),
            "sku": r.body.get("sku"),
            "properties": props,
            "systemData": existing["systemData"] if existing else _system_data(),
        }
        self.deployments[(endpoint, name)] = body

        def finish() -> None:
            if (endpoint, name) in self.deployments:
                self.deployments[(endpoint, name)]["properties"]["provisioningState"] = "Succeeded"

        op = self._new_operation("deployment", (endpoint, name), finish)
        return (200 if existing else 201), body, {"Azure-AsyncOperation": self._operation_url(op, "Status")}

    def _deployment_delete(self, r: Recorded, endpoint: str, name: str):
        body = self.deployments.get((endpoint, name))
        if body is None:
            return 204, None, {}
        traffic = self.endpoints.get(endpoint, {}).get("properties", {}).get("traffic", {})
        if traffic.get(name):
            return _error(400, "BadArgument", f"Deployment {name} still has {traffic[name]}% traffic")
        body["properties"]["provisioningState"] = "Deleting"
        op = self._new_operation("deployment-delete", (endpoint, name), lambda: self.deployments.pop((endpoint, name)))
        return 202, None, {"Location": self._operation_url(op, "Result"), "Retry-After": "0"}

    def _deployment_logs(self, r: Recorded, endpoint: str, name: str):
        if (endpoint, name) not in self.deployments:
            return _error(404, "UserError", f"Deployment {name} not found on {endpoint}.")
        return 200, {"content": self.deployment_logs.get((endpoint, name), "")}, {}

    # scoring (the endpoint's data plane, key auth) ----------------------------------------------------------
    def _score(self, r: Recorded, name: str):
        keys = self.keys.get(name)
        if name not in self.endpoints or keys is None:
            return 404, {"message": "endpoint not found"}, {}
        auth = {k.lower(): v for k, v in r.headers.items()}.get("authorization", "")
        if auth not in (f"Bearer {keys['primaryKey']}", f"Bearer {keys['secondaryKey']}"):
            return 401, {"message": "Unauthorized"}, {}
        deployment = {k.lower(): v for k, v in r.headers.items()}.get("azureml-model-deployment")
        if deployment and (name, deployment) not in self.deployments:
            return 404, {"message": f"deployment {deployment} not found"}, {}
        return 200, self.scorer(name, deployment, r.body), {}

    # metrics (Azure Monitor on the endpoint resource) -------------------------------------------------------
    def _metrics(self, r: Recorded, name: str):
        if name not in self.endpoints:
            return _error(404, "ResourceNotFound", f"Endpoint {name} not found.")
        data = [{"timeStamp": ts, "total": total} for ts, total in sorted(self.metrics.get(name, []))]
        resource = f"{self.workspace_id}/onlineEndpoints/{name}"
        return (
            200,
            {
                "cost": 0,
                "timespan": r.query.get("timespan", ""),
                "interval": r.query.get("interval", "PT1M"),
                "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "resourceregion": self.location,
                "value": [
                    {
                        "id": f"{resource}/providers/Microsoft.Insights/metrics/RequestsPerMinute",
                        "type": "Microsoft.Insights/metrics",
                        "name": {"value": "RequestsPerMinute", "localizedValue": "Requests Per Minute"},
                        "unit": "Count",
                        "timeseries": [{"metadatavalues": [], "data": data}],
                        "errorCode": "Success",
                    }
                ],
            },
            {},
        )

    # long-running operations -------------------------------------------------------------------------------
    def _new_operation(self, kind: str, target: tuple[str, ...], finish: Callable[[], None] | None) -> _Operation:
        op = _Operation(id=uuid.uuid4().hex, kind=kind, target=target, finish=finish)
        self.operations[op.id] = op
        return op

    def _operation_url(self, op: _Operation, kind: str) -> str:
        return (
            f"{ARM}/subscriptions/{self.subscription}/providers/Microsoft.MachineLearningServices/locations/"
            f"{self.location}/{'mfeOperationsStatus' if kind == 'Status' else 'mfeOperationResults'}/{op.id}"
            "?api-version=2023-04-01-preview"
        )

    def _operation(self, r: Recorded, kind: str | None, kind2: str | None, op: str):
        kind = kind or kind2 or ""
        operation = self.operations.get(op)
        if operation is None:
            return _error(404, "NotFound", f"operation {op} not found")
        if kind.lower() == "result":
            if operation.status == "InProgress":
                return 202, None, {"Location": r.url, "Retry-After": "0"}
            return 200, None, {}
        body: dict[str, Any] = {"id": op, "name": op, "status": operation.status}
        if operation.error:
            body["error"] = operation.error
        return 200, body, {}


class _Adapter(BaseAdapter):
    """requests adapter that answers from the fake instead of the network."""

    def __init__(self, fake: FakeAzureML):
        super().__init__()
        self.fake = fake

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        raw = request.body.encode() if isinstance(request.body, str) else request.body
        status, payload, headers = self.fake.handle(request.method, request.url, dict(request.headers), raw)
        content = b"" if payload is None else json.dumps(payload).encode()
        response = requests.Response()
        response.status_code = status
        response._content = content
        response.raw = io.BytesIO(content)
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": uuid.uuid4().hex, **headers}
        )
        response.url = request.url
        response.request = request
        response.reason = requests.status_codes._codes.get(status, ("",))[0].upper().replace("_", " ")
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


class FakeCredential:
    """A token credential handing out unsigned JWTs whose audience is the scope's resource.

    ``azure-ai-ml`` decodes the token it sends with a pipeline job and checks its audience is
    ``https://ml.azure.com/``, so an opaque string would not do. Records the scopes asked for.
    """

    def __init__(self, tenant: str = "72f988bf-0000-0000-0000-000000000000") -> None:
        self.tenant = tenant
        self.scopes: list[str] = []

    def _token(self, scopes: tuple[str, ...]) -> str:
        import base64

        self.scopes.extend(scopes)
        resource = scopes[0].removesuffix(".default").rstrip("/") if scopes else ""

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        claims = {"aud": resource, "tid": self.tenant, "oid": "autotune-identity", "exp": 32503680000}
        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token(scopes), 32503680000)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token(scopes), 32503680000)
