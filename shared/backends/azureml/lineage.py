"""What a fine-tuned model is made of, read from the job that trained it, and checked against that job's component.

Why from the job: registration happens minutes to hours after submission, and BASE_MODEL or
PIPELINE_COMPONENT_VERSION may have changed in between. The job's own tag (``autotune-base-model`` =
``name:version``, set at submission) says which base model was trained, so the lineage tags and the
``inference_compute_allow_list`` copied onto the new model version are that model's, whatever settings say now.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.backends.base import BackendError

if TYPE_CHECKING:
    from shared.backends.azureml.client import AzureMLClients

log = logging.getLogger(__name__)

BASE_MODEL_TAG = "autotune-base-model"  # on the job: "name:version" of the base model it fine-tuned

_component_inputs: dict[str, frozenset[str]] = {}  # component version -> its input names (versions are immutable)


def base_model_of_job(clients: AzureMLClients, job_name: str) -> tuple[str, str] | None:
    """(name, version) of the base model the job fine-tuned, from its tag; None for a job without it."""
    job = clients.workspace.jobs.get(job_name)
    value = str((job.tags or {}).get(BASE_MODEL_TAG) or "")
    name, _, version = value.rpartition(":")
    if not name or not version:
        log.warning("job %s has no %s tag: the new model version gets no base-model lineage", job_name, BASE_MODEL_TAG)
        return None
    return name, version


def lineage_tags(clients: AzureMLClients, job_name: str) -> dict[str, str]:
    """``base_model`` and the base model's ``inference_compute_allow_list``, for the job's own base model."""
    out: dict[str, str] = {}
    try:
        base = base_model_of_job(clients, job_name)
        if base is None:
            return out
        name, version = base
        out["base_model"] = f"{name}:{version}"
        model = clients.registry.models.get(name, version=version)
    except Exception:  # lineage is a convenience: a retired base model must not block registration
        log.warning("base model tags unavailable for job %s", job_name, exc_info=True)
        return out
    tags = model.tags or {}
    if "inference_compute_allow_list" in tags:
        out["inference_compute_allow_list"] = str(tags["inference_compute_allow_list"])
    return out


def check_component_inputs(component: Any, parameters: dict[str, Any], shipped_version: str) -> None:
    """Every parameter is an input of the component actually resolved (its version may differ from the shipped
    copy the parameters were first checked against); the names are cached per component version."""
    version = str(getattr(component, "version", "") or "")
    if version == shipped_version:
        return  # checked already against the shipped copy (finetune_params.merge_parameters)
    if version not in _component_inputs:
        _component_inputs[version] = frozenset(str(name) for name in (getattr(component, "inputs", None) or {}))
    names = _component_inputs[version]
    unknown = sorted(set(parameters) - names)
    if names and unknown:
        raise BackendError(
            f"chat_completion_pipeline version {version} (PIPELINE_COMPONENT_VERSION) has no input "
            f"{', '.join(unknown)}; the parameters were written for version {shipped_version}. Set "
            f"PIPELINE_COMPONENT_VERSION to {shipped_version}, or drop those parameters (FINETUNE_PARAMETERS or "
            "incoming/{model}/finetune.json).",
            setting="PIPELINE_COMPONENT_VERSION",
            code="component_inputs_changed",
        )
