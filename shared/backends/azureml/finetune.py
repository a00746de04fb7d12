"""The notebook's fine-tuning cells, from settings: parameters, pipeline job, submission and the job's state (the
base model and compute cells are in ``resources.py``, registration in ``registry.py``).

Notebook cell → function here:
- "pick a foundation model to fine tune" (``registry_ml_client.models.get(model_name, label="latest")``)
  → ``resolve_base_model`` (+ a clear error for a missing, archived or retired model);
- "create or get the compute" (unsupported sizes, ``finetune_compute_allow_list``, ``compute.list_sizes()`` for
  ``gpus_per_node``) → ``check_compute``;
- "define finetune parameters" (defaults, then ``model_specific_defaults``) → ``build_parameters``;
- "build the pipeline" (``chat_completion_pipeline`` from the registry, ``@pipeline``, ``force_rerun``,
  ``continue_on_step_failure``) → ``build_pipeline_job`` (pure: checked offline against the component spec);
- "submit" (``jobs.create_or_update``) → ``submit_finetune``;
- "register the fine tuned model" (``azureml://jobs/{job}/outputs/trained_model``, ``mlflow_model``)
  → ``register_model``.
``azure.ai.ml`` is imported inside the functions only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import is_not_found, to_backend_error
from shared.backends.azureml.lineage import BASE_MODEL_TAG, check_component_inputs
from shared.backends.base import (
    CORPUS_TAG,
    DATASET_TAG,
    MODEL_TAG,
    RUN_TAG,
    BackendError,
    BaseModelRef,
    ComputeInfo,
    FineTuneRequest,
    JobState,
    JobStatus,
)
from shared.component_inputs import component_inputs, shipped_component_version
from shared.finetune_params import NOTEBOOK_DEFAULTS, merge_parameters, model_defaults, pipeline_display_name

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients
    from shared.settings import Settings

log = logging.getLogger(__name__)

PIPELINE_COMPONENT = "chat_completion_pipeline"
# The notebook: "Model fine-tuning is not supported on these VM sizes" (they lack memory for Phi-3 + DeepSpeed).
COMPUTE_INPUTS = ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation")
PATH_TYPES = frozenset({"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable"})
JOB_PREFIX = "autotune-"

_JOB_STATES = {
    "notstarted": JobState.QUEUED,
    "starting": JobState.QUEUED,
    "provisioning": JobState.QUEUED,
    "preparing": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "scheduled": JobState.QUEUED,
    "running": JobState.RUNNING,
    "finalizing": JobState.RUNNING,
    "cancelrequested": JobState.RUNNING,
    "notresponding": JobState.RUNNING,
    "paused": JobState.RUNNING,
    "unknown": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "finished": JobState.COMPLETED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
    "cancelled": JobState.CANCELED,
}


def job_state(status: Any) -> JobState:
    """Azure ML job status (``JobStatus`` enum or its string) → our ``JobState``."""
    text = str(getattr(status, "value", status) or "").replace("_", "").replace(" ", "").lower()
    return _JOB_STATES.get(text, JobState.RUNNING)


def job_name_for(run_id: str) -> str:
    """A deterministic job name per run: a resubmission after a crash meets the first job, never a second one."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "-", run_id).strip("-_")
    return f"{JOB_PREFIX}{cleaned}"[:255]


# ------------------------------------------------------------------------------------------------- parameters
def build_parameters(base: BaseModelRef, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook defaults → the model's ``model_specific_defaults`` → the run's overrides (already layered)."""
    return merge_parameters(
        [
            ("the notebook defaults", dict(NOTEBOOK_DEFAULTS)),
            (
                f"the 'model_specific_defaults' tag of {base.name}",
                model_defaults(base.tags.get("model_specific_defaults"), model=base.name),
            ),
            ("the run's parameters (FINETUNE_PARAMETERS, finetune.json)", dict(overrides)),
        ]
    )


def compute_inputs(compute: ComputeInfo) -> dict[str, Any]:
    """The four ``compute_*`` inputs (and instance types when serverless), as the notebook sets them."""
    if compute.serverless:
        return {
            **dict.fromkeys(COMPUTE_INPUTS, "serverless"),
            "instance_type_finetune": compute.instance_type,
            "instance_type_model_evaluation": compute.instance_type,
        }
    return dict.fromkeys(COMPUTE_INPUTS, compute.name)


# ------------------------------------------------------------------------------------------------- pipeline
def datastore_uri(settings: Settings, blob_path: str) -> str:
    """``azureml://datastores/{AZUREML_DATASTORE}/paths/{path inside TRAINING_CONTAINER}``."""
    return f"azureml://datastores/{settings.azureml_datastore}/paths/{blob_path.lstrip('/')}"


def job_tags(request: FineTuneRequest) -> dict[str, str]:
    tags = {
        RUN_TAG: request.run_id,
        MODEL_TAG: request.model,
        DATASET_TAG: request.dataset_id,
        BASE_MODEL_TAG: f"{request.base_model.name}:{request.base_model.version}",
    }
    if request.data_version:
        tags[CORPUS_TAG] = request.data_version
    return tags


def build_pipeline_job(
    component: Any,
    request: FineTuneRequest,
    *,
    train_input: Any,
    test_input: Any,
    job_name: str | None = None,
) -> Any:
    """The notebook's ``create_pipeline()`` job, from a ``chat_completion_pipeline`` component entity.

    Pure (no network): ``component`` may come from the registry or from ``load_component(spec.yaml)``.
    """
    from azure.ai.ml import Input
    from azure.ai.ml.dsl import pipeline

    specs = component_inputs()
    params: dict[str, Any] = {}
    for name, value in request.parameters.items():
        kind = specs.get(name, {}).get("type")
        params[name] = Input(type=kind, path=value) if kind in PATH_TYPES else value
    display_name = pipeline_display_name(request.base_model.name, request.parameters, request.compute.gpus_per_node)

    @pipeline()
    def create_pipeline() -> dict[str, Any]:
        chat_completion_pipeline = component(
            mlflow_model_path=request.base_model.id,
            **compute_inputs(request.compute),
            train_file_path=train_input,
            test_file_path=test_input,
            number_of_gpu_to_use_finetuning=request.compute.gpus_per_node,
            **params,
        )
        return {"trained_model": chat_completion_pipeline.outputs.mlflow_model_folder}

    job = create_pipeline()
    job.display_name = display_name
    job.experiment_name = request.experiment
    job.tags = job_tags(request)
    # Properties are filterable server-side (name=value), tags only by key: find_job uses this one.
    job.properties = {RUN_TAG: request.run_id}
    job.settings.force_rerun = True
    job.settings.continue_on_step_failure = False
    if job_name:
        job.name = job_name
    return job


def get_pipeline_component(clients: AzureMLClients, settings: Settings) -> Any:
    version = settings.pipeline_component_version.strip()
    try:
        if version:
            return clients.registry.components.get(PIPELINE_COMPONENT, version=version)
        return clients.registry.components.get(PIPELINE_COMPONENT, label="latest")
    except Exception as exc:
        if is_not_found(exc):
            raise BackendError(
                f"Component {PIPELINE_COMPONENT} version {version or 'latest'} (PIPELINE_COMPONENT_VERSION) was not "
                f"found in registry {settings.base_model_registry}.",
                setting="PIPELINE_COMPONENT_VERSION",
                code="component_not_found",
            ) from None
        raise to_backend_error(exc, settings, action=f"read {PIPELINE_COMPONENT} from the registry") from exc


def ensure_data_asset(clients: AzureMLClients, settings: Settings, request: FineTuneRequest, split: str) -> Any:
    """Register the run's split as a versioned ``uri_file`` data asset (lineage); return the job Input.

    The version is the corpus id (one version per corpus snapshot), or the dataset id for a run from before
    corpora; an asset version is immutable, and a corpus id names its content, so an existing one is reused."""
    from azure.ai.ml import Input
    from azure.ai.ml.entities import Data

    blob_path = request.train_path if split == "train" else request.test_path
    name = f"{settings.registered_model_prefix}{request.model}-{split}"
    version = request.data_version or request.dataset_id
    path = datastore_uri(settings, blob_path)
    ws = clients.workspace
    try:
        existing = ws.data.get(name, version=version)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        existing = None
    if existing is None:
        ws.data.create_or_update(
            Data(
                name=name,
                version=version,
                type="uri_file",
                path=path,
                description=(
                    f"{split} split of corpus {request.data_version} for model {request.model}"
                    if request.data_version
                    else f"{split} split of dataset {request.dataset_id} for model {request.model}"
                ),
                tags=job_tags(request),
            )
        )
    return Input(type="uri_file", path=f"azureml:{name}:{version}")


def find_job(clients: AzureMLClients, settings: Settings, run_id: str) -> str | None:
    """The job already submitted for ``run_id``: by its deterministic name, else by our run tag/property."""
    ws = clients.workspace
    name = job_name_for(run_id)
    try:
        job = ws.jobs.get(name)
        if (job.tags or {}).get(RUN_TAG) in (None, run_id):
            return str(job.name)
    except Exception as exc:
        if not is_not_found(exc):
            raise to_backend_error(exc, settings, action=f"look up the job of run {run_id}") from exc
    try:
        from azure.ai.ml.constants import ListViewType

        for job in ws.jobs.list(properties=f"{RUN_TAG}={run_id}", list_view_type=ListViewType.ALL):
            if job is not None and (job.tags or {}).get(RUN_TAG) == run_id:
                return str(job.name)
    except Exception as exc:
        raise to_backend_error(exc, settings, action=f"look up the job of run {run_id}") from exc
    return None


def submit_finetune(clients: AzureMLClients, settings: Settings, request: FineTuneRequest) -> str:
    existing = find_job(clients, settings, request.run_id)
    if existing:
        log.info("run %s already has job %s; not submitting again", request.run_id, existing)
        return existing
    name = job_name_for(request.run_id)
    action = f"submit the fine-tuning job of run {request.run_id}"
    try:
        component = get_pipeline_component(clients, settings)
        check_component_inputs(component, request.parameters, shipped_component_version())
        train = ensure_data_asset(clients, settings, request, "train")
        test = ensure_data_asset(clients, settings, request, "test")
        job = build_pipeline_job(component, request, train_input=train, test_input=test, job_name=name)
        created = clients.workspace.jobs.create_or_update(job, experiment_name=request.experiment)
        return str(created.name)
    except BackendError:
        raise
    except Exception as exc:
        if "already exists" in str(exc).lower():  # lost a race with another submitter of the same run
            return name
        raise to_backend_error(
            exc, settings, action=action, setting="COMPUTE_CLUSTER", size=request.compute.instance_type
        ) from exc


def get_job(clients: AzureMLClients, settings: Settings, job_name: str) -> JobStatus:
    try:
        job = clients.workspace.jobs.get(job_name)
    except Exception as exc:
        if is_not_found(exc):
            raise BackendError(f"Job {job_name} was not found in the workspace.", code="job_not_found") from None
        raise to_backend_error(exc, settings, action=f"read job {job_name}") from exc
    state = job_state(job.status)
    studio = str(getattr(job, "studio_url", "") or "")
    error = ""
    if state in (JobState.FAILED, JobState.CANCELED):
        error = _job_error(clients, job_name) or (
            f"Job {job_name} ended {state.value}" + (f"; see {studio} for the failing step's logs" if studio else "")
        )
    return JobStatus(name=job_name, state=state, error=error, studio_url=studio)


def _job_error(clients: AzureMLClients, job_name: str) -> str:
    """The failure Azure ML recorded (run history): the failed step's message first, it says what went wrong;
    the pipeline's own message ("some steps failed") otherwise. Best effort: the studio link stands in."""
    try:
        runs = clients.workspace.jobs._runs_operations
        parent = _run_error(runs, job_name)
        for child in runs.get_run_children(job_name):
            if child is not None and job_state(getattr(child, "status", "")) is JobState.FAILED:
                message = _run_error(runs, str(child.name))
                if message:
                    step = getattr(child, "display_name", None) or child.name
                    return f"step {step} failed: {message}" + (f" (pipeline: {parent})" if parent else "")
        return parent
    except Exception:  # the studio link stands in when run history cannot be read
        log.debug("no run-history error for job %s", job_name, exc_info=True)
        return ""


def _run_error(runs: Any, run_id: str) -> str:
    error = getattr(getattr(runs.get_run_details(run_id), "error", None), "error", None)
    return str(getattr(error, "message", "") or "")


def cancel_job(clients: AzureMLClients, settings: Settings, job_name: str) -> None:
    try:
        clients.workspace.jobs.begin_cancel(job_name)
    except Exception as exc:
        if is_not_found(exc):
            return
        raise to_backend_error(exc, settings, action=f"cancel job {job_name}") from exc
