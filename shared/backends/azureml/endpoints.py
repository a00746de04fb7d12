"""The notebook's deployment cells, never waited on: endpoint, deployment, traffic, deletion.

Notebook: ``ManagedOnlineEndpoint(name, auth_mode="key")``; ``ManagedOnlineDeployment(model=..., instance_type=
"Standard_NC6s_v3", instance_count=1, liveness_probe=ProbeSettings(initial_delay=600),
request_settings=OnlineRequestSettings(request_timeout_ms=90000))``; ``endpoint.traffic = {"demo": 100}``; and
at the end ``online_endpoints.begin_delete``. The notebook calls ``.wait()`` on each; here every operation is only
started (``begin_*``) and its state is read on a later reconciler tick, because a deployment takes 10-30 minutes
and a function must answer within seconds.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import QUOTA_CODES, is_not_found, quota_advice, to_backend_error
from shared.backends.azureml.naming import from_azure, to_azure
from shared.backends.azureml.resources import _lower, literal_list
from shared.backends.base import (
    MANAGED_TAG,
    BackendError,
    DeploymentPhase,
    DeploymentState,
    EndpointInfo,
    ModelVersion,
)

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients
    from shared.settings import Settings

log = logging.getLogger(__name__)

LIVENESS_INITIAL_DELAY_S = 600
REQUEST_TIMEOUT_MS = 90000

_PHASES = {
    "creating": DeploymentPhase.CREATING,
    "updating": DeploymentPhase.CREATING,
    "scaling": DeploymentPhase.CREATING,
    "succeeded": DeploymentPhase.SUCCEEDED,
    "failed": DeploymentPhase.FAILED,
    "canceled": DeploymentPhase.FAILED,
    "deleting": DeploymentPhase.DELETING,
}


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _endpoint_info(endpoint: Any, deployments: tuple[str, ...] = ()) -> EndpointInfo:
    return EndpointInfo(
        name=str(endpoint.name),
        scoring_uri=str(getattr(endpoint, "scoring_uri", "") or ""),
        state=_state(getattr(endpoint, "provisioning_state", "")),
        tags={str(k): str(v) for k, v in (endpoint.tags or {}).items()},
        traffic={from_azure(str(k)): int(v) for k, v in (endpoint.traffic or {}).items()},
        deployments=deployments,
    )


def _deployment_names(ws: Any, endpoint: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(from_azure(str(d.name)) for d in ws.online_deployments.list(endpoint_name=endpoint)))
    except Exception as exc:
        if is_not_found(exc):
            return ()
        raise


def get_endpoint(clients: AzureMLClients, settings: Settings, name: str) -> EndpointInfo | None:
    ws = clients.workspace
    try:
        endpoint = ws.online_endpoints.get(name)
        return _endpoint_info(endpoint, _deployment_names(ws, name))
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise to_backend_error(exc, settings, action=f"read endpoint {name}") from exc


def build_endpoint(name: str, tags: dict[str, str]) -> Any:
    """The notebook's ``ManagedOnlineEndpoint(name, auth_mode="key")``, tagged as ours (MANAGED_TAG)."""
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    all_tags = {**{str(k): str(v) for k, v in tags.items()}, MANAGED_TAG: "true"}
    return ManagedOnlineEndpoint(
        name=name, description="Fine-tuned chat model served by autotune", auth_mode="key", tags=all_tags
    )


def build_deployment(endpoint: str, deployment: str, model: ModelVersion, instance_type: str, count: int) -> Any:
    """The notebook's ``ManagedOnlineDeployment``: probe initial_delay 600 s, request timeout 90 s."""
    from azure.ai.ml.entities import ManagedOnlineDeployment, OnlineRequestSettings, ProbeSettings

    return ManagedOnlineDeployment(
        name=to_azure(deployment),
        endpoint_name=endpoint,
        model=f"azureml:{model.name}:{model.version}",
        instance_type=instance_type,
        instance_count=count,
        liveness_probe=ProbeSettings(initial_delay=LIVENESS_INITIAL_DELAY_S),
        request_settings=OnlineRequestSettings(request_timeout_ms=REQUEST_TIMEOUT_MS),
        tags={"model": model.name, "model_version": model.version},
    )


def begin_endpoint(clients: AzureMLClients, settings: Settings, name: str, tags: dict[str, str]) -> EndpointInfo:
    """Create the endpoint (key auth, MANAGED_TAG) if missing; never waits."""
    existing = get_endpoint(clients, settings, name)
    if existing is not None:
        if not existing.managed:
            raise BackendError(
                f"Endpoint {name} exists in the workspace but was not created by this app (no {MANAGED_TAG} tag); "
                "it is left alone. Delete or rename it, or rename the model.",
                code="endpoint_not_managed",
            )
        return existing
    endpoint = build_endpoint(name, tags)
    all_tags = dict(endpoint.tags)
    try:
        clients.workspace.online_endpoints.begin_create_or_update(endpoint)
    except Exception as exc:
        if _name_taken(exc):
            raise BackendError(
                f"Endpoint name {name} is taken in this Azure region by another workspace or subscription (online "
                "endpoint names are unique per region: the scoring URI is {name}.{region}.inference.ml.azure.com). "
                "Set ENDPOINT_NAME_SUFFIX to another value (1-8 lowercase letters or digits) and the model is "
                f"deployed under a new name. Azure said: {getattr(getattr(exc, 'error', None), 'message', exc)}",
                setting="ENDPOINT_NAME_SUFFIX",
                code="endpoint_name_taken",
            ) from None
        raise to_backend_error(exc, settings, action=f"create endpoint {name}") from exc
    return get_endpoint(clients, settings, name) or EndpointInfo(name=name, state="Creating", tags=all_tags)


def _name_taken(exc: BaseException) -> bool:
    """A create refused because the name exists elsewhere in the region (it is not in this workspace: checked)."""
    status = getattr(exc, "status_code", None)
    code = str(getattr(getattr(exc, "error", None), "code", "") or "")
    text = f"{code} {getattr(getattr(exc, 'error', None), 'message', '') or exc}".lower()
    return status == 409 or (
        status == 400 and any(w in text for w in ("already exists", "already in use", "not unique"))
    )


def list_managed_endpoints(clients: AzureMLClients, settings: Settings) -> list[EndpointInfo]:
    ws = clients.workspace
    try:
        endpoints = [
            e for e in ws.online_endpoints.list() if str((e.tags or {}).get(MANAGED_TAG, "")).lower() == "true"
        ]
        return [_endpoint_info(e, _deployment_names(ws, str(e.name))) for e in endpoints]
    except Exception as exc:
        raise to_backend_error(exc, settings, action="list the workspace's endpoints") from exc


def _allow_list(clients: AzureMLClients, settings: Settings, model: ModelVersion) -> list[str]:
    """``inference_compute_allow_list`` from the model version (copied from its base model at registration)."""
    tags = model.tags
    if "inference_compute_allow_list" not in tags:
        try:
            tags = {
                str(k): str(v)
                for k, v in (clients.workspace.models.get(model.name, version=model.version).tags or {}).items()
            }
        except Exception:  # no tag readable: the service checks the size itself
            log.debug("could not read tags of %s:%s", model.name, model.version, exc_info=True)
            return []
    return literal_list(tags.get("inference_compute_allow_list"))


def begin_deployment(
    clients: AzureMLClients,
    settings: Settings,
    endpoint: str,
    deployment: str,
    model: ModelVersion,
    instance_type: str,
    instance_count: int,
) -> Any:
    """Start deployment ``deployment`` of ``model`` on ``endpoint`` as the notebook configures it; never waits."""
    allow = _allow_list(clients, settings, model)
    if allow and instance_type.lower() not in _lower(allow):
        raise BackendError(
            f"INSTANCE_TYPE {instance_type} is not in {model.name}'s inference_compute_allow_list: "
            f"{', '.join(allow)}. Set INSTANCE_TYPE to one of those sizes.",
            setting="INSTANCE_TYPE",
            code="instance_type_not_allowed",
        )
    ws = clients.workspace
    try:
        current = ws.online_deployments.get(name=to_azure(deployment), endpoint_name=endpoint)
    except Exception as exc:
        if not is_not_found(exc):
            raise to_backend_error(exc, settings, action=f"read deployment {deployment} of {endpoint}") from exc
        current = None
    if current is not None:
        log.info("deployment %s of %s exists already (%s)", deployment, endpoint, current.provisioning_state)
        return None
    spec = build_deployment(endpoint, deployment, model, instance_type, instance_count)
    try:
        return ws.online_deployments.begin_create_or_update(spec)  # the poller: its error explains a failure
    except Exception as exc:
        raise to_backend_error(
            exc,
            settings,
            action=f"deploy {model.name}:{model.version} to {endpoint}",
            setting="INSTANCE_TYPE",
            size=instance_type,
        ) from exc


def get_deployment(
    clients: AzureMLClients, settings: Settings, endpoint: str, deployment: str, *, poller: Any = None
) -> DeploymentState:
    ws = clients.workspace
    try:
        dep = ws.online_deployments.get(name=to_azure(deployment), endpoint_name=endpoint)
    except Exception as exc:
        if is_not_found(exc):
            return DeploymentState(endpoint=endpoint, name=deployment, phase=DeploymentPhase.NOT_FOUND)
        raise to_backend_error(exc, settings, action=f"read deployment {deployment} of {endpoint}") from exc
    phase = _PHASES.get(_state(dep.provisioning_state).lower(), DeploymentPhase.CREATING)
    error = code = ""
    if phase is DeploymentPhase.FAILED:
        known = _poller_error(poller)
        error = _deployment_error(clients, endpoint, deployment, dep, known)
        code = "quota" if QUOTA_CODES.search(known) else ""
    model_id = str(getattr(dep, "model", "") or "")
    version = re.search(r"(?:versions/|:)([^/:]+)$", model_id)
    created = getattr(getattr(dep, "creation_context", None), "created_at", None)
    return DeploymentState(
        endpoint=endpoint,
        name=deployment,
        phase=phase,
        error=error,
        model_version=version.group(1) if version else "",
        created_at=created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
        code=code,
    )


def _poller_error(poller: Any) -> str:
    """The error of a finished long-running operation started by this process (e.g. a quota failure)."""
    if poller is None or not poller.done():
        return ""
    try:
        poller.result(timeout=0)
    except Exception as exc:  # noqa: BLE001 - the failure is what we want to read
        return str(getattr(getattr(exc, "error", None), "message", "") or exc)
    return ""


def _deployment_error(clients: AzureMLClients, endpoint: str, deployment: str, dep: Any, known: str | None) -> str:
    """Why a deployment failed: the operation's error when this process saw it, else the container log tail."""
    size = str(getattr(dep, "instance_type", "") or "")
    if known:
        if "quota" in known.lower():
            return f"{quota_advice('INSTANCE_TYPE', size)} Azure said: {known}"
        return known
    tail = ""
    try:
        logs = clients.workspace.online_deployments.get_logs(
            name=to_azure(deployment), endpoint_name=endpoint, lines=20
        )
        tail = " | ".join(line for line in str(logs or "").splitlines()[-5:] if line.strip())
    except Exception:  # logs exist only once a container started
        log.debug("no logs for deployment %s/%s", endpoint, deployment, exc_info=True)
    message = f"Deployment {deployment} of {endpoint} failed (provisioning state Failed)"
    if tail:
        return f"{message}; last log lines: {tail}"
    return (
        f"{message}. Common causes: not enough quota for {size or 'INSTANCE_TYPE'} (Azure ML needs 20% spare "
        "quota), a size not offered in the region, or a model that does not load; see the endpoint's "
        "deployment logs in the studio."
    )


def set_traffic(clients: AzureMLClients, settings: Settings, endpoint: str, traffic: dict[str, int]) -> None:
    ws = clients.workspace
    try:
        current = ws.online_endpoints.get(endpoint)
        current.traffic = {to_azure(str(k)): int(v) for k, v in traffic.items()}
        ws.online_endpoints.begin_create_or_update(current)
    except Exception as exc:
        raise to_backend_error(exc, settings, action=f"set traffic {traffic} on {endpoint}") from exc


def begin_delete_deployment(clients: AzureMLClients, settings: Settings, endpoint: str, deployment: str) -> None:
    try:
        clients.workspace.online_deployments.begin_delete(name=to_azure(deployment), endpoint_name=endpoint)
    except Exception as exc:
        if is_not_found(exc):
            return
        raise to_backend_error(exc, settings, action=f"delete deployment {deployment} of {endpoint}") from exc


def begin_delete_endpoint(clients: AzureMLClients, settings: Settings, endpoint: str) -> None:
    try:
        clients.workspace.online_endpoints.begin_delete(name=endpoint)
    except Exception as exc:
        if is_not_found(exc):
            return
        raise to_backend_error(exc, settings, action=f"delete endpoint {endpoint}") from exc
