"""The Azure ML backend's entities, built offline and checked against the real component spec.

``load_component`` reads ``../shared/contracts/chat_completion_pipeline.spec.yaml`` without network; the pipeline
job our builder makes must validate and serialise (``_to_rest_object``) with every input the component declares,
in the component's types (booleans as the strings "true"/"false").
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from shared.backends.azureml.endpoints import build_deployment, build_endpoint
from shared.backends.azureml.finetune import build_pipeline_job, job_name_for, job_state
from shared.backends.azureml.naming import from_azure, to_azure
from shared.backends.azureml.resources import literal_list
from shared.backends.base import (
    DATASET_TAG,
    MANAGED_TAG,
    MODEL_TAG,
    RUN_TAG,
    BaseModelRef,
    ComputeInfo,
    FineTuneRequest,
    JobState,
    ModelVersion,
)
from shared.finetune_params import resolve_parameters
from tests.conftest import SHARED_DIR

SPEC = SHARED_DIR / "contracts" / "chat_completion_pipeline.spec.yaml"
BASE_ID = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"


@pytest.fixture(scope="module")
def component():
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is absent (../shared not beside the project): cannot load the component spec")
    import yaml
    from azure.ai.ml import load_component

    return load_component(str(SPEC)), yaml.safe_load(SPEC.read_text(encoding="utf-8"))["inputs"]


def _request(compute: ComputeInfo, params: dict | None = None) -> FineTuneRequest:
    return FineTuneRequest(
        run_id="support-bot-0123456789ab",
        model="support-bot",
        dataset_id="0123456789abcdef",
        train_path="datasets/support-bot/0123456789abcdef/train.jsonl",
        test_path="datasets/support-bot/0123456789abcdef/test.jsonl",
        parameters=params if params is not None else resolve_parameters("{'precision': 16, 'save_total_limit': 1}"),
        base_model=BaseModelRef("Phi-3-mini-4k-instruct", "15", BASE_ID),
        compute=compute,
        experiment="autotune-chat-finetune",
    )


def _job(component, compute: ComputeInfo, params: dict | None = None):
    from azure.ai.ml import Input

    request = _request(compute, params)
    return request, build_pipeline_job(
        component,
        request,
        train_input=Input(type="uri_file", path="azureml://datastores/autotune_training/paths/" + request.train_path),
        test_input=Input(type="uri_file", path="azureml://datastores/autotune_training/paths/" + request.test_path),
        job_name=job_name_for(request.run_id),
    )


def _literal_ok(spec: dict, value: str) -> bool:
    kind = spec["type"]
    if "enum" in spec:
        return value in [str(e) for e in spec["enum"]]
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "number":
        float(value)
        return True
    return kind == "string"


def test_pipeline_job_validates_and_serialises_against_the_component_spec(component):
    comp, spec_inputs = component
    cluster = ComputeInfo("gpu-cluster", "Standard_NC24ads_A100_v4", 2)
    request, job = _job(comp, cluster)
    result = job._validate()
    assert result.passed, result.error_messages

    rest = job._to_rest_object()
    props = rest.properties
    assert rest.name == "autotune-support-bot-0123456789ab"
    assert props.job_type == "Pipeline"
    assert props.display_name == "Phi-3-mini-4k-instruct-ultrachat-bs2-cosine-ds2-lora-save_limit1-seqlen-1"
    assert props.experiment_name == "autotune-chat-finetune"
    assert props.tags == {
        RUN_TAG: request.run_id,
        MODEL_TAG: "support-bot",
        DATASET_TAG: "0123456789abcdef",
        "autotune-base-model": "Phi-3-mini-4k-instruct:15",
    }
    assert props.properties[RUN_TAG] == request.run_id
    assert props.settings["force_rerun"] is True and props.settings["continue_on_step_failure"] is False
    assert props.outputs["trained_model"].job_output_type == "mlflow_model"

    node = props.jobs["chat_completion_pipeline"]
    assert node["outputs"]["mlflow_model_folder"]["value"] == "${{parent.outputs.trained_model}}"
    inputs = node["inputs"]
    assert set(inputs) <= set(spec_inputs), f"inputs the component lacks: {set(inputs) - set(spec_inputs)}"
    assert inputs["mlflow_model_path"] == {"uri": BASE_ID, "job_input_type": "mlflow_model"}
    for split in ("train", "test"):
        assert inputs[f"{split}_file_path"]["job_input_type"] == "uri_file"
        assert inputs[f"{split}_file_path"]["uri"].endswith(f"/{split}.jsonl")
    for name in ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation"):
        assert inputs[name]["value"] == "gpu-cluster"
    assert inputs["number_of_gpu_to_use_finetuning"]["value"] == "2"
    for name, entry in inputs.items():
        if entry.get("job_input_type") == "literal":
            assert _literal_ok(spec_inputs[name], entry["value"]), (name, entry["value"], spec_inputs[name])
    # The notebook's values, booleans as strings.
    assert inputs["apply_lora"]["value"] == "true" and inputs["apply_deepspeed"]["value"] == "true"
    assert inputs["deepspeed_stage"]["value"] == "2" and inputs["lr_scheduler_type"]["value"] == "cosine"
    assert inputs["num_train_epochs"]["value"] == "3" and float(inputs["learning_rate"]["value"]) == 5e-6


def test_serverless_pipeline_sets_compute_and_instance_type_inputs(component):
    comp, _ = component
    _, job = _job(comp, ComputeInfo("serverless", "Standard_NC24ads_A100_v4", 1, serverless=True))
    assert job._validate().passed
    inputs = job._to_rest_object().properties.jobs["chat_completion_pipeline"]["inputs"]
    assert {inputs[n]["value"] for n in inputs if n.startswith("compute_")} == {"serverless"}
    assert inputs["instance_type_finetune"]["value"] == "Standard_NC24ads_A100_v4"
    assert inputs["instance_type_model_evaluation"]["value"] == "Standard_NC24ads_A100_v4"


def test_path_typed_parameters_become_inputs_of_their_type(component):
    comp, _ = component
    params = {**resolve_parameters(), "deepspeed": "azureml://datastores/ds/paths/configs/ds3.json"}
    _, job = _job(comp, ComputeInfo("gpu-cluster", "Standard_NC24ads_A100_v4", 1), params)
    inputs = job._to_rest_object().properties.jobs["chat_completion_pipeline"]["inputs"]
    assert inputs["deepspeed"] == {
        "uri": "azureml://datastores/ds/paths/configs/ds3.json",
        "job_input_type": "uri_file",
    }


def test_deployment_entity_is_the_notebooks():
    model = ModelVersion("autotune-support-bot", "3")
    deployment = build_deployment("at-support-bot", "v3", model, "Standard_NC6s_v3", 2)
    deployment._validate()
    rest = deployment._to_rest_object(location="eastus2")
    props = rest.properties
    assert rest.sku.capacity == 2 and props.instance_type == "Standard_NC6s_v3"
    assert props.liveness_probe.initial_delay == timedelta(seconds=600)
    assert props.request_settings.request_timeout == timedelta(milliseconds=90000)
    assert props.model == "azureml:autotune-support-bot:3"
    assert deployment.name == "v-3"  # Azure ML needs 3+ characters; the app keeps calling it v3


def test_endpoint_entity_uses_key_auth_and_the_managed_tag():
    endpoint = build_endpoint("at-support-bot", {MODEL_TAG: "support-bot"})
    rest = endpoint._to_rest_online_endpoint(location="eastus2")
    assert str(rest.properties.auth_mode).lower().endswith("key")
    assert rest.tags == {MODEL_TAG: "support-bot", MANAGED_TAG: "true"}


@pytest.mark.parametrize(("app", "azure"), [("v1", "v-1"), ("v9", "v-9"), ("v10", "v10"), ("v123", "v123")])
def test_deployment_names_round_trip(app, azure):
    assert to_azure(app) == azure and from_azure(azure) == app


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NotStarted", JobState.QUEUED),
        ("Preparing", JobState.QUEUED),
        ("Running", JobState.RUNNING),
        ("Finalizing", JobState.RUNNING),
        ("Completed", JobState.COMPLETED),
        ("Failed", JobState.FAILED),
        ("Canceled", JobState.CANCELED),
        ("CancelRequested", JobState.RUNNING),
    ],
)
def test_job_status_mapping(status, state):
    assert job_state(status) is state


def test_list_tags_parse_the_registry_forms():
    assert literal_list("['Standard_NC6s_v3', 'Standard_NC12s_v3']") == ["Standard_NC6s_v3", "Standard_NC12s_v3"]
    assert literal_list("[Standard_NC6s_v3, Standard_NC12s_v3]") == ["Standard_NC6s_v3", "Standard_NC12s_v3"]
    assert literal_list(None) == []
    assert job_name_for("bot/x y") == "autotune-bot-x-y"
