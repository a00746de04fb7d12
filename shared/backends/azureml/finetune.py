"""The notebook's fine-tuning cells, from settings: base model, compute, parameters, pipeline job, registration.

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

import ast
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import is_not_found, to_backend_error
from shared.backends.azureml.lineage import BASE_MODEL_TAG, check_component_inputs
from shared.backends.base import (
    DATASET_TAG,
    MODEL_TAG,
    RUN_TAG,
    BackendError,
    BaseModelRef,
    ComputeInfo,
    FineTuneRequest,
    JobState,
    JobStatus,
    ModelVersion,
    registration_key,
)
from shared.component_inputs import component_inputs, shipped_component_version
from shared.finetune_params import NOTEBOOK_DEFAULTS, merge_parameters, model_defaults, pipeline_display_name

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients
    from shared.settings import Settings

log = logging.getLogger(__name__)

PIPELINE_COMPONENT = "chat_completion_pipeline"
# The notebook: "Model fine-tuning is not supported on these VM sizes" (they lack memory for Phi-3 + DeepSpeed).
UNSUPPORTED_FINETUNE_SIZES = ("standard_nc6", "standard_nc12", "standard_nc24", "standard_nc24r")
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


def literal_list(value: Any) -> list[str]:
    """A list tag as the registry stores it: "['Standard_NC24ads_A100_v4', ...]" (the notebook literal_evals it)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value]
    text = str(value).strip()
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        parsed = [part for part in text.strip("[]").split(",")]
    if isinstance(parsed, str):
        parsed = [parsed]
    return [str(item).strip().strip("'\"") for item in parsed if str(item).strip()]


def _lower(sizes: list[str]) -> list[str]:
    return [size.lower() for size in sizes]


# ------------------------------------------------------------------------------------------------- base model
def resolve_base_model(clients: AzureMLClients, settings: Settings) -> BaseModelRef:
    """BASE_MODEL at BASE_MODEL_VERSION (a version, or a label such as ``latest``) from the registry."""
    name, wanted = settings.base_model, (settings.base_model_version or "latest")
    registry = settings.base_model_registry
    change = (
        "Set BASE_MODEL to a model of the registry that supports chat-completion fine-tuning "
        "(and BASE_MODEL_VERSION to one of its versions, or 'latest')."
    )
    model = None
    try:
        if wanted.lower() != "latest":
            try:
                model = clients.registry.models.get(name, version=wanted)
            except Exception as exc:  # not a version: tried as a label next
                if not is_not_found(exc):
                    raise
        if model is None:
            model = clients.registry.models.get(name, label=wanted)
    except BackendError:
        raise
    except Exception as exc:
        text = str(exc).lower()
        if is_not_found(exc) or any(words in text for words in ("not found", "does not exist", "no versions")):
            raise BackendError(
                f"Base model {name!r} (BASE_MODEL) at version/label {wanted!r} (BASE_MODEL_VERSION) was not found "
                f"in registry {registry!r}; it may have been archived or retired. {change}",
                setting="BASE_MODEL",
                code="base_model_not_found",
            ) from None
        raise to_backend_error(exc, settings, action=f"read base model {name} from registry {registry}") from exc
    tags = {str(k): str(v) for k, v in (model.tags or {}).items()}
    properties = {str(k): str(v) for k, v in (getattr(model, "properties", None) or {}).items()}
    _check_not_retired(name, str(model.version), tags, properties, getattr(model, "stage", None), change)
    return BaseModelRef(name=name, version=str(model.version), id=str(model.id), tags=tags)


def _check_not_retired(
    name: str, version: str, tags: Mapping[str, str], properties: Mapping[str, str], stage: Any, change: str
) -> None:
    today = datetime.now(UTC).date().isoformat()
    retirement = tags.get("FinetuneRetirementDate", "")
    if retirement and retirement[:10] <= today:
        raise BackendError(
            f"Base model {name!r} version {version} (BASE_MODEL / BASE_MODEL_VERSION) can no longer be fine-tuned: "
            f"its fine-tuning was retired on {retirement[:10]}. {change}",
            setting="BASE_MODEL",
            code="base_model_retired",
        )
    if str(stage or "").lower() == "archived":
        raise BackendError(
            f"Base model {name!r} version {version} (BASE_MODEL / BASE_MODEL_VERSION) is archived in the registry. "
            f"{change}",
            setting="BASE_MODEL",
            code="base_model_retired",
        )
    deprecation = tags.get("FinetuneDeprecationDate", "")
    if deprecation and deprecation[:10] <= today:
        log.warning(
            "Base model %s version %s (BASE_MODEL) is deprecated for fine-tuning since %s (retirement: %s); runs "
            "still work until it retires: choose another BASE_MODEL before then.",
            name,
            version,
            deprecation[:10],
            retirement[:10] or "not announced",
            extra={"setting": "BASE_MODEL"},
        )
    tasks = properties.get("finetuning-tasks") or tags.get("finetuning-tasks") or ""
    if tasks and "chat-completion" not in tasks.lower():
        raise BackendError(
            f"Base model {name!r} (BASE_MODEL) supports fine-tuning for {tasks}, not chat-completion. {change}",
            setting="BASE_MODEL",
            code="base_model_unsupported",
        )


# ------------------------------------------------------------------------------------------------- compute
def check_compute(clients: AzureMLClients, settings: Settings, base: BaseModelRef) -> ComputeInfo:
    """COMPUTE_CLUSTER (or serverless + INSTANCE_TYPE_FINETUNE): exists, healthy, allowed size, GPUs per node."""
    cluster = settings.compute_cluster.strip()
    serverless = cluster.lower() == "serverless"
    ws = clients.workspace
    if serverless:
        size, setting = settings.instance_type_finetune, "INSTANCE_TYPE_FINETUNE"
    else:
        size, setting = _cluster_size(ws, settings, cluster), "COMPUTE_CLUSTER"
    what = f"{'serverless size' if serverless else 'cluster ' + repr(cluster) + ' of size'} {size}"
    allow = literal_list(base.tags.get("finetune_compute_allow_list"))
    if allow and size.lower() not in _lower(allow):
        raise BackendError(
            f"The {what} ({setting}) is not in {base.name}'s finetune_compute_allow_list: {', '.join(allow)}. "
            f"Use a compute of one of those sizes.",
            setting=setting,
            code="compute_size_not_allowed",
        )
    if not allow and size.lower() in UNSUPPORTED_FINETUNE_SIZES:
        raise BackendError(
            f"Fine-tuning is not supported on the {what} ({setting}); the notebook lists "
            f"{', '.join(UNSUPPORTED_FINETUNE_SIZES)} as unsupported. Use a larger GPU size.",
            setting=setting,
            code="compute_size_not_allowed",
        )
    try:
        sizes = list(ws.compute.list_sizes())
    except Exception as exc:
        raise to_backend_error(exc, settings, action="list the VM sizes of the workspace's region") from exc
    available = {str(s.name).lower(): s for s in sizes}
    match = available.get(size.lower())
    if match is None:
        raise BackendError(
            f"The {what} ({setting}) is not offered in the workspace's region, so its GPU count is unknown.",
            setting=setting,
            code="compute_size_unknown",
        )
    gpus = int(getattr(match, "gpus", 0) or 0)
    if gpus < 1:
        raise BackendError(
            f"The {what} ({setting}) has no GPU; fine-tuning {base.name} needs a GPU size.",
            setting=setting,
            code="compute_no_gpu",
        )
    return ComputeInfo(
        name="serverless" if serverless else cluster, instance_type=size, gpus_per_node=gpus, serverless=serverless
    )


def _cluster_size(ws: Any, settings: Settings, cluster: str) -> str:
    try:
        compute = ws.compute.get(cluster)
    except Exception as exc:
        if is_not_found(exc):
            raise BackendError(
                f"Compute cluster {cluster!r} (COMPUTE_CLUSTER) does not exist in workspace "
                f"{settings.azureml_workspace_name}. Create a GPU AmlCompute cluster of that name, or set "
                "COMPUTE_CLUSTER=serverless and INSTANCE_TYPE_FINETUNE to a GPU size.",
                setting="COMPUTE_CLUSTER",
                code="compute_not_found",
            ) from None
        raise to_backend_error(exc, settings, action=f"read compute {cluster}", setting="COMPUTE_CLUSTER") from exc
    kind = type(compute).__name__
    if kind != "AmlCompute":
        raise BackendError(
            f"Compute {cluster!r} (COMPUTE_CLUSTER) is a {getattr(compute, 'type', None) or kind}, not a compute "
            "cluster (AmlCompute); the pipeline needs a cluster or COMPUTE_CLUSTER=serverless.",
            setting="COMPUTE_CLUSTER",
            code="compute_unsupported",
        )
    state = str(getattr(compute.provisioning_state, "value", compute.provisioning_state) or "").lower()
    if state == "failed":
        errors = "; ".join(str(getattr(e, "message", e)) for e in (getattr(compute, "provisioning_errors", None) or []))
        raise BackendError(
            f"Compute cluster {cluster!r} (COMPUTE_CLUSTER) is in provisioning state Failed"
            + (f": {errors}" if errors else "")
            + ". Delete and recreate it, or point COMPUTE_CLUSTER at a healthy cluster.",
            setting="COMPUTE_CLUSTER",
            code="compute_failed",
        )
    if state in {"creating", "deleting", "updating"}:
        raise BackendError(
            f"Compute cluster {cluster!r} (COMPUTE_CLUSTER) is {state}; the run will be submitted when it is ready.",
            setting="COMPUTE_CLUSTER",
            retryable=state != "deleting",
            code="compute_not_ready",
        )
    return str(compute.size)


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
    return {
        RUN_TAG: request.run_id,
        MODEL_TAG: request.model,
        DATASET_TAG: request.dataset_id,
        BASE_MODEL_TAG: f"{request.base_model.name}:{request.base_model.version}",
    }


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
    """Register the prepared split as a versioned ``uri_file`` data asset (lineage); return the job Input."""
    from azure.ai.ml import Input
    from azure.ai.ml.entities import Data

    blob_path = request.train_path if split == "train" else request.test_path
    name = f"{settings.registered_model_prefix}{request.model}-{split}"
    version = request.dataset_id
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
                description=f"{split} split of dataset {request.dataset_id} for model {request.model}",
                tags={RUN_TAG: request.run_id, MODEL_TAG: request.model, DATASET_TAG: request.dataset_id},
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


# ------------------------------------------------------------------------------------------------- registry
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
