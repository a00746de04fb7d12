"""The ML platform behind one protocol: Azure ML in the cloud, a real local platform on one machine.

Why a protocol: every function (ingest, events, reconcile, gateway, sweeper) speaks about jobs, model
versions, endpoints and deployments, never about ``azure.ai.ml`` entities, so the same logic runs against
either platform and ``azure.ai.ml`` never leaks out of ``shared/backends/azureml/``. Value types are
plain dataclasses. Long operations only *start* here (``begin_*``); their state is read on later calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from shared.errors import BackendError  # defined with the error hierarchy; the backends' error type

__all__ = [
    "CORPUS_TAG",
    "MANAGED_TAG",
    "BackendError",
    "BaseModelRef",
    "ComputeInfo",
    "DeploymentPhase",
    "DeploymentState",
    "EndpointInfo",
    "FineTuneRequest",
    "JobState",
    "JobStatus",
    "MLBackend",
    "ModelVersion",
    "ScoringTarget",
    "registration_key",
]

# Tag put on every endpoint this app creates; the sweeper never touches an endpoint without it.
MANAGED_TAG = "autotune-managed"
# Tag naming our run on jobs and model versions (lineage and idempotency).
RUN_TAG = "autotune-run-id"
MODEL_TAG = "autotune-model"
DATASET_TAG = "autotune-dataset-id"
CORPUS_TAG = "autotune-corpus-id"  # the corpus snapshot a job trained on (the version of its data assets)
PIN_TAG = "autotune-pinned"
# Tag naming the attempt of our run on model versions: a retried run registers its own version.
ATTEMPT_TAG = "autotune-run-attempt"


def registration_key(tags: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The (run id, attempt) a model version was registered for; None for a version that is not ours.

    Why the attempt too: a run retried after it registered (its deployment failed) trains a new model, which
    must become a new version; keyed by run alone, registration would hand back the previous attempt's version.
    A version registered before attempts were tagged counts as attempt 1.
    """
    run_id = (tags or {}).get(RUN_TAG, "")
    if not run_id:
        return None
    return run_id, str((tags or {}).get(ATTEMPT_TAG) or "1")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: JobState
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    studio_url: str = ""
    progress: dict[str, Any] = field(default_factory=dict)  # e.g. {"step": 12, "max_steps": 40, "stage": "train"}


@dataclass(frozen=True)
class BaseModelRef:
    """The base model to fine-tune: ``id`` is what the pipeline's ``mlflow_model_path`` gets."""

    name: str
    version: str
    id: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComputeInfo:
    name: str
    instance_type: str
    gpus_per_node: int
    serverless: bool = False


@dataclass(frozen=True)
class FineTuneRequest:
    """Everything a fine-tuning job needs; ``train_path`` / ``test_path`` are blob paths in the container.

    ``data_version`` names the data snapshot (the corpus id; empty for a run from before corpora, whose data is
    the one dataset ``dataset_id``): Azure ML versions the train/test data assets by it.
    """

    run_id: str
    model: str
    dataset_id: str
    train_path: str
    test_path: str
    parameters: dict[str, Any]
    base_model: BaseModelRef
    compute: ComputeInfo
    experiment: str
    data_version: str = ""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    scoring_uri: str = ""
    state: str = ""  # provisioning state as the platform words it (Creating, Succeeded, Failed, Deleting)
    tags: dict[str, str] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: tuple[str, ...] = ()

    @property
    def managed(self) -> bool:
        return str(self.tags.get(MANAGED_TAG, "")).lower() == "true"


class DeploymentPhase(StrEnum):
    CREATING = "creating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DELETING = "deleting"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class DeploymentState:
    endpoint: str
    name: str
    phase: DeploymentPhase
    error: str = ""
    model_version: str = ""
    created_at: str = ""
    code: str = ""  # why it failed, when the platform says: "quota" (no room now: worth retrying later)


@dataclass(frozen=True)
class ScoringTarget:
    """Where and how to send a scoring request. ``headers`` carry the secret: never log them."""

    uri: str
    headers: dict[str, str] = field(repr=False, default_factory=dict)
    deployment: str = ""


@runtime_checkable
class MLBackend(Protocol):
    """What every function needs from an ML platform. Implementations must be idempotent per call."""

    name: str

    # Fine-tuning
    def resolve_base_model(self) -> BaseModelRef: ...
    def check_compute(self, base: BaseModelRef) -> ComputeInfo: ...
    def build_parameters(self, base: BaseModelRef, compute: ComputeInfo, overrides: dict[str, Any]) -> dict[str, Any]:
        """Defaults, then the model's defaults, then overrides; validated (BackendError names a bad one)."""
        ...

    def submit_finetune(self, request: FineTuneRequest) -> str:
        """Submit (or find the job already submitted for ``request.run_id``) and return the job name."""
        ...

    def find_job(self, run_id: str) -> str | None: ...
    def get_job(self, job_name: str) -> JobStatus: ...
    def cancel_job(self, job_name: str) -> None: ...

    # Registry
    def register_model(self, job_name: str, name: str, tags: dict[str, str]) -> ModelVersion:
        """Register the job's ``trained_model`` output; returns the existing version registered for the same
        run and attempt (``registration_key`` of ``tags``) if there is one."""
        ...

    def get_model(self, name: str, version: str) -> ModelVersion | None: ...

    # Endpoints and deployments
    def begin_endpoint(self, name: str, tags: dict[str, str]) -> EndpointInfo:
        """Create the endpoint if missing (key auth, MANAGED_TAG) without waiting; return its current state."""
        ...

    def get_endpoint(self, name: str) -> EndpointInfo | None: ...
    def list_managed_endpoints(self) -> list[EndpointInfo]: ...
    def begin_deployment(
        self, endpoint: str, deployment: str, model: ModelVersion, instance_type: str, instance_count: int
    ) -> None: ...

    def get_deployment(self, endpoint: str, deployment: str) -> DeploymentState: ...
    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None: ...
    def begin_delete_deployment(self, endpoint: str, deployment: str) -> None: ...
    def begin_delete_endpoint(self, endpoint: str) -> None: ...

    # Scoring and activity
    def scoring_target(self, endpoint: str, deployment: str | None = None) -> ScoringTarget: ...
    def invoke(self, target: ScoringTarget, payload: dict[str, Any], timeout: float = 60.0) -> Any: ...
    def endpoint_last_request(self, endpoint: str) -> str | None:
        """ISO time of the last request the endpoint itself saw (Azure Monitor / local server), if known."""
        ...
