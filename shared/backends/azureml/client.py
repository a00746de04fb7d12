"""The credential and the two ``MLClient`` objects the notebook creates: the workspace and the ``azureml`` registry.

Why lazy: constructing the registry client performs a discovery request, and ``azure.ai.ml`` takes seconds to
import; the gateway and the sweeper never need either. Both clients share one HTTP transport (tests pass a fake
one) and azure-core's retry policy, configured here, retries 408/429/5xx with exponential backoff and honours
``Retry-After``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import to_backend_error

if TYPE_CHECKING:
    from shared.settings import Settings

ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class RetrySettings:
    """azure-core ``RetryPolicy`` keyword arguments (retry_total, backoff) shared by every client."""

    total: int = 4
    backoff_factor: float = 0.8
    backoff_max: float = 60.0

    def kwargs(self) -> dict[str, Any]:
        return {
            "retry_total": self.total,
            "retry_backoff_factor": self.backoff_factor,
            "retry_backoff_max": self.backoff_max,
        }


class AzureMLClients:
    """Lazily built credential, workspace ``MLClient`` and registry ``MLClient``."""

    def __init__(
        self,
        settings: Settings,
        *,
        credential: Any = None,
        transport: Any = None,
        retry: RetrySettings | None = None,
    ):
        self.settings = settings
        self._credential = credential
        self.transport = transport
        self.retry = retry or RetrySettings()
        self._lock = threading.Lock()
        self._workspace: Any = None
        self._registry: Any = None

    @property
    def credential(self) -> Any:
        """``DefaultAzureCredential`` (managed identity in Azure; ``AZURE_CLIENT_ID`` picks a user-assigned one)."""
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            client_id = self.settings.azure_client_id or None
            self._credential = DefaultAzureCredential(
                managed_identity_client_id=client_id, workload_identity_client_id=client_id
            )
        return self._credential

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**self.retry.kwargs(), "show_progress": False, "enable_telemetry": False}
        if self.transport is not None:
            kwargs["transport"] = self.transport
        return kwargs

    @property
    def workspace(self) -> Any:
        """``MLClient`` for AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME."""
        with self._lock:
            if self._workspace is None:
                from azure.ai.ml import MLClient

                s = self.settings
                self._workspace = MLClient(
                    self.credential,
                    subscription_id=s.azure_subscription_id,
                    resource_group_name=s.azure_resource_group,
                    workspace_name=s.azureml_workspace_name,
                    **self.client_kwargs(),
                )
            return self._workspace

    @property
    def registry(self) -> Any:
        """``MLClient`` for BASE_MODEL_REGISTRY (``azureml``): base models and the pipeline component."""
        with self._lock:
            if self._registry is None:
                from azure.ai.ml import MLClient

                try:
                    self._registry = MLClient(
                        self.credential, registry_name=self.settings.base_model_registry, **self.client_kwargs()
                    )
                except Exception as exc:
                    raise to_backend_error(
                        exc,
                        self.settings,
                        action=f"open the model registry {self.settings.base_model_registry!r}",
                        setting="BASE_MODEL_REGISTRY",
                    ) from exc
            return self._registry
