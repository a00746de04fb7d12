"""The notebook's "register the fine tuned model" cell, and reading model versions back: one version per run
attempt (``registration_key``), found again rather than registered twice. ``azure.ai.ml`` is imported inside the
functions only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import is_not_found, to_backend_error
from shared.backends.base import (
    BackendError,
    ModelVersion,
    registration_key,
)

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients
    from shared.settings import Settings

log = logging.getLogger(__name__)


def _version_of(model: Any) -> ModelVersion:
    return ModelVersion(
        name=str(model.name),
        version=str(model.version),
        path=str(getattr(model, "path", "") or ""),
        tags={str(k): str(v) for k, v in (model.tags or {}).items()},
    )


def _list_versions(ws: Any, name: str) -> list[Any]:
    try:
        return [m for m in ws.models.list(name=name) if m is not None]
    except Exception as exc:
        if is_not_found(exc):
            return []
        raise


def register_model(
    clients: AzureMLClients,
    settings: Settings,
    job_name: str,
    name: str,
    tags: Mapping[str, str],
    *,
    extra_tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Register the job's ``trained_model`` output as the next version of ``name`` (once per run)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    ws = clients.workspace
    key = registration_key(tags)
    action = f"register model {name} from job {job_name}"
    try:
        for attempt in range(3):
            versions = _list_versions(ws, name)
            if key:
                for existing in versions:
                    if registration_key(existing.tags) == key:
                        return _version_of(existing)
            numbers = [int(m.version) for m in versions if str(m.version).isdigit()]
            version = str(max(numbers, default=0) + 1)
            model = Model(
                path=f"azureml://jobs/{job_name}/outputs/trained_model",
                type=AssetTypes.MLFLOW_MODEL,
                name=name,
                version=version,
                description=f"Fine-tuned by autotune from job {job_name}",
                tags={**dict(extra_tags or {}), **{str(k): str(v) for k, v in tags.items()}},
            )
            try:
                return _version_of(ws.models.create_or_update(model))
            except Exception as exc:
                if getattr(exc, "status_code", None) == 409 and attempt < 2:
                    continue  # another registration took this version number: look again
                raise
    except Exception as exc:
        raise to_backend_error(exc, settings, action=action) from exc
    raise BackendError(f"Could not {action}: version numbers kept colliding", retryable=True)


def get_model(clients: AzureMLClients, settings: Settings, name: str, version: str) -> ModelVersion | None:
    try:
        return _version_of(clients.workspace.models.get(name, version=version))
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise to_backend_error(exc, settings, action=f"read model {name}:{version}") from exc
