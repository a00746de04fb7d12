"""``AzureMLBackend``: the ``MLBackend`` protocol on Azure Machine Learning, the notebook's steps from settings.

Composition only: the fine-tuning cells live in ``finetune.py``, the deployment cells in ``endpoints.py``, the
SDK-free hot paths (scoring target, invoke, activity) in ``rest.py``. Constructing this object is cheap: no
Azure SDK is imported and no request is made until a method needs one.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from shared.backends.azureml import endpoints, finetune, lineage, registry, resources
from shared.backends.azureml.client import AzureMLClients, RetrySettings
from shared.backends.azureml.rest import ArmRest
from shared.backends.base import (
    BaseModelRef,
    ComputeInfo,
    DeploymentState,
    EndpointInfo,
    FineTuneRequest,
    JobStatus,
    ModelVersion,
    ScoringTarget,
)

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)


class AzureMLBackend:
    """Azure ML through ``azure-ai-ml`` (jobs, registry, endpoints) and ARM REST (scoring, metrics).

    ``credential`` defaults to ``DefaultAzureCredential`` (managed identity in Azure, AZURE_CLIENT_ID for a
    user-assigned one); ``transport`` is an azure-core HTTP transport shared by every client (tests pass a fake
    of the REST API); ``retry`` tunes azure-core's retry of 408/429/5xx.
    """

    name = "azureml"

    def __init__(
        self,
        settings: Settings,
        *,
        credential: Any = None,
        transport: Any = None,
        retry: RetrySettings | None = None,
    ):
        self.settings = settings
        self.clients = AzureMLClients(settings, credential=credential, transport=transport, retry=retry)
        self.rest = ArmRest(settings, lambda: self.clients.credential, transport=transport, retry=self.clients.retry)
        self._pollers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # Fine-tuning ------------------------------------------------------------------------------------------
    def resolve_base_model(self) -> BaseModelRef:
        return resources.resolve_base_model(self.clients, self.settings)

    def check_compute(self, base: BaseModelRef) -> ComputeInfo:
        return resources.check_compute(self.clients, self.settings, base)

    def build_parameters(self, base: BaseModelRef, compute: ComputeInfo, overrides: dict[str, Any]) -> dict[str, Any]:
        return finetune.build_parameters(base, overrides)

    def submit_finetune(self, request: FineTuneRequest) -> str:
        return finetune.submit_finetune(self.clients, self.settings, request)

    def find_job(self, run_id: str) -> str | None:
        return finetune.find_job(self.clients, self.settings, run_id)

    def get_job(self, job_name: str) -> JobStatus:
        return finetune.get_job(self.clients, self.settings, job_name)

    def cancel_job(self, job_name: str) -> None:
        finetune.cancel_job(self.clients, self.settings, job_name)

    # Registry ---------------------------------------------------------------------------------------------
    def register_model(self, job_name: str, name: str, tags: dict[str, str]) -> ModelVersion:
        # Lineage from the job's own record (its base-model tag), not from the settings of today.
        return registry.register_model(
            self.clients, self.settings, job_name, name, tags, extra_tags=lineage.lineage_tags(self.clients, job_name)
        )

    def get_model(self, name: str, version: str) -> ModelVersion | None:
        return registry.get_model(self.clients, self.settings, name, version)

    # Endpoints and deployments ---------------------------------------------------------------------------
    def begin_endpoint(self, name: str, tags: dict[str, str]) -> EndpointInfo:
        return endpoints.begin_endpoint(self.clients, self.settings, name, tags)

    def get_endpoint(self, name: str) -> EndpointInfo | None:
        return endpoints.get_endpoint(self.clients, self.settings, name)

    def list_managed_endpoints(self) -> list[EndpointInfo]:
        return endpoints.list_managed_endpoints(self.clients, self.settings)

    def begin_deployment(
        self, endpoint: str, deployment: str, model: ModelVersion, instance_type: str, instance_count: int
    ) -> None:
        poller = endpoints.begin_deployment(
            self.clients, self.settings, endpoint, deployment, model, instance_type, instance_count
        )
        if poller is not None:
            with self._lock:
                self._pollers[(endpoint, deployment)] = poller

    def get_deployment(self, endpoint: str, deployment: str) -> DeploymentState:
        with self._lock:
            poller = self._pollers.get((endpoint, deployment))
        return endpoints.get_deployment(self.clients, self.settings, endpoint, deployment, poller=poller)

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        endpoints.set_traffic(self.clients, self.settings, endpoint, traffic)

    def begin_delete_deployment(self, endpoint: str, deployment: str) -> None:
        endpoints.begin_delete_deployment(self.clients, self.settings, endpoint, deployment)
        with self._lock:
            self._pollers.pop((endpoint, deployment), None)

    def begin_delete_endpoint(self, endpoint: str) -> None:
        endpoints.begin_delete_endpoint(self.clients, self.settings, endpoint)

    # Scoring and activity (no azure.ai.ml) ----------------------------------------------------------------
    def scoring_target(self, endpoint: str, deployment: str | None = None) -> ScoringTarget:
        return self.rest.scoring_target(endpoint, deployment)

    def invoke(self, target: ScoringTarget, payload: dict[str, Any], timeout: float = 60.0) -> Any:
        return self.rest.invoke(target, payload, timeout)

    def endpoint_last_request(self, endpoint: str) -> str | None:
        return self.rest.endpoint_last_request(endpoint)
