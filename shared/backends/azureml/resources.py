"""The notebook's "pick a foundation model" and "create or get the compute" cells: the base model resolved from
the registry (with a clear error for a missing, archived or retired one) and the compute checked (unsupported
sizes, the model's ``finetune_compute_allow_list``, GPUs per node). ``azure.ai.ml`` is imported inside the
functions only."""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import is_not_found, to_backend_error
from shared.backends.base import (
    BackendError,
    BaseModelRef,
    ComputeInfo,
)

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients
    from shared.settings import Settings

log = logging.getLogger(__name__)

UNSUPPORTED_FINETUNE_SIZES = ("standard_nc6", "standard_nc12", "standard_nc24", "standard_nc24r")


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
