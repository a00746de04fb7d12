"""AzureMLBackend against a fake of the Azure ML REST API (real azure-ai-ml, fake service at the HTTP level).

Covers the notebook's path end to end: base model and component from the registry, compute checks, data assets,
pipeline submission (request shape), idempotent resubmission, registration, endpoint, deployment, traffic,
deletion, keys/scoring, metrics, retries and the worded errors users see.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.backends.azureml import AzureMLBackend
from shared.backends.azureml.client import RetrySettings
from shared.backends.base import (
    CORPUS_TAG,
    DATASET_TAG,
    MANAGED_TAG,
    MODEL_TAG,
    RUN_TAG,
    BackendError,
    DeploymentPhase,
    FineTuneRequest,
    JobState,
    MLBackend,
)
from shared.settings import load_settings
from tests.fakes.aml_rest import FakeAzureML, FakeCredential

RUN = "support-bot-0123456789ab"
DATASET = "0123456789abcdef"


def make_backend(fake: FakeAzureML, **env: str) -> AzureMLBackend:
    settings = load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "ML_BACKEND": "azureml",
            "AZURE_SUBSCRIPTION_ID": fake.subscription,
            "AZURE_RESOURCE_GROUP": fake.resource_group,
            "AZUREML_WORKSPACE_NAME": fake.workspace,
            "BASE_MODEL": "Phi-3-mini-4k-instruct",  # the notebook's model (its world, as seeded)
            **env,
        }
    )
    return AzureMLBackend(
        settings,
        credential=FakeCredential(),
        transport=fake.transport(),
        retry=RetrySettings(total=3, backoff_factor=0, backoff_max=0),
    )


@pytest.fixture
def backend(fake: FakeAzureML) -> AzureMLBackend:
    return make_backend(fake)


def request_for(backend: AzureMLBackend, overrides: dict | None = None, run_id: str = RUN) -> FineTuneRequest:
    base = backend.resolve_base_model()
    compute = backend.check_compute(base)
    return FineTuneRequest(
        run_id=run_id,
        model="support-bot",
        dataset_id=DATASET,
        train_path=f"datasets/support-bot/{DATASET}/train.jsonl",
        test_path=f"datasets/support-bot/{DATASET}/test.jsonl",
        parameters=backend.build_parameters(base, compute, overrides or {}),
        base_model=base,
        compute=compute,
        experiment=backend.settings.experiment_name,
    )


def test_backend_satisfies_the_protocol(backend):
    assert isinstance(backend, MLBackend) and backend.name == "azureml"


# ------------------------------------------------------------------------------------------------ fine-tuning
def test_submission_request_shape(fake, backend):
    request = request_for(backend, {"learning_rate": 1e-5, "num_train_epochs": 2})
    job_name = backend.submit_finetune(request)
    assert job_name == f"autotune-{RUN}"

    (put,) = fake.find("PUT", f"/jobs/{job_name}")
    assert put.query["api-version"] == "2024-01-01-preview"
    props = put.body["properties"]
    assert props["jobType"] == "Pipeline"
    assert props["experimentName"] == "autotune-chat-finetune"
    assert props["displayName"] == "Phi-3-mini-4k-instruct-ultrachat-bs1-cosine-ds2-lora-save_limit1-seqlen-1"
    assert props["tags"][RUN_TAG] == RUN and props["tags"][MODEL_TAG] == "support-bot"
    assert props["tags"][DATASET_TAG] == DATASET and props["properties"][RUN_TAG] == RUN
    assert props["settings"]["force_rerun"] is True and props["settings"]["continue_on_step_failure"] is False
    assert props["outputs"]["trained_model"]["jobOutputType"] == "mlflow_model"
    node = props["jobs"]["chat_completion_pipeline"]
    assert node["componentId"] == "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"
    assert node["outputs"]["mlflow_model_folder"]["value"] == "${{parent.outputs.trained_model}}"
    inputs = node["inputs"]
    assert inputs["mlflow_model_path"] == {
        "uri": "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15",
        "job_input_type": "mlflow_model",
    }
    for name in ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation"):
        assert inputs[name] == {"value": "gpu-cluster", "job_input_type": "literal"}
    assert inputs["number_of_gpu_to_use_finetuning"]["value"] == "1"
    # notebook defaults < model_specific_defaults (precision 16, 1 epoch) < overrides
    assert inputs["num_train_epochs"]["value"] == "2" and float(inputs["learning_rate"]["value"]) == 1e-5
    assert inputs["precision"]["value"] == "16" and inputs["apply_lora"]["value"] == "true"
    assert "learning_rate_min" not in inputs  # a publisher hint in the tag, not an input
    for split in ("train", "test"):
        assert inputs[f"{split}_file_path"]["job_input_type"] == "uri_file"
        assert inputs[f"{split}_file_path"]["uri"].endswith(f"/data/autotune-support-bot-{split}/versions/{DATASET}")
        (data_put,) = fake.find("PUT", f"/data/autotune-support-bot-{split}/versions/{DATASET}")
        data = data_put.body["properties"]
        assert data["dataType"] == "uri_file"
        assert (
            data["dataUri"]
            == f"azureml://datastores/autotune_training/paths/datasets/support-bot/{DATASET}/{split}.jsonl"
        )
        assert data["tags"][RUN_TAG] == RUN
    assert not fake.unrouted


def test_a_corpus_runs_data_assets_are_the_corpus_files_versioned_by_corpus_id(fake, backend):
    corpus = "c0ffee00c0ffee00"
    request = dataclasses.replace(
        request_for(backend, run_id="support-bot-corpus1"),
        data_version=corpus,
        train_path=f"datasets/support-bot/corpora/{corpus}/train.jsonl",
        test_path=f"datasets/support-bot/corpora/{corpus}/test.jsonl",
    )
    job_name = backend.submit_finetune(request)
    (put,) = fake.find("PUT", f"/jobs/{job_name}")
    assert put.body["properties"]["tags"][CORPUS_TAG] == corpus
    inputs = put.body["properties"]["jobs"]["chat_completion_pipeline"]["inputs"]
    for split in ("train", "test"):
        assert inputs[f"{split}_file_path"]["uri"].endswith(f"/data/autotune-support-bot-{split}/versions/{corpus}")
        (data_put,) = fake.find("PUT", f"/data/autotune-support-bot-{split}/versions/{corpus}")
        data = data_put.body["properties"]
        assert data["dataUri"].endswith(f"/paths/datasets/support-bot/corpora/{corpus}/{split}.jsonl")
        assert data["tags"][CORPUS_TAG] == corpus and f"corpus {corpus}" in data["description"]
    assert not fake.unrouted


def test_resubmission_after_a_crash_never_submits_twice(fake, backend):
    request = request_for(backend)
    first = backend.submit_finetune(request)
    restarted = make_backend(fake)  # a new process after a crash: nothing in memory
    assert restarted.find_job(RUN) == first
    assert restarted.submit_finetune(request) == first
    assert len(fake.find("PUT", "/jobs/")) == 1


def test_a_job_found_by_run_tag_under_another_name_is_adopted(fake, backend):
    fake.jobs["someone-renamed-it"] = {
        "id": f"{fake.workspace_id}/jobs/someone-renamed-it",
        "name": "someone-renamed-it",
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": {
            "jobType": "Pipeline",
            "status": "Running",
            "tags": {RUN_TAG: RUN},
            "properties": {RUN_TAG: RUN},
            "jobs": {},
            "inputs": {},
            "outputs": {},
            "settings": {},
        },
        "systemData": fake.jobs.get("x", {}).get("systemData", {"createdAt": "2026-01-01T00:00:00Z"}),
    }
    assert backend.submit_finetune(request_for(backend)) == "someone-renamed-it"
    assert fake.find("PUT", "/jobs/") == []


def test_job_status_error_and_cancel(fake, backend):
    name = backend.submit_finetune(request_for(backend))
    status = backend.get_job(name)
    assert status.state is JobState.QUEUED and status.studio_url.startswith("https://ml.azure.com/runs/")
    fake.set_job_status(name, "Failed")
    failed = backend.get_job(name)
    assert failed.state is JobState.FAILED and name in failed.error and "ml.azure.com" in failed.error
    fake.fail_job(name, "Pipeline has failed child jobs.", step="finetune", step_message="CUDA out of memory")
    failed = backend.get_job(name)
    assert failed.error == "step finetune failed: CUDA out of memory (pipeline: Pipeline has failed child jobs.)"
    fake.set_job_status(name, "Running")
    backend.cancel_job(name)
    assert fake.find("POST", f"/jobs/{name}/cancel")
    backend.cancel_job("no-such-job")  # idempotent: nothing to cancel


def test_pinned_pipeline_component_version(fake):
    fake.add_pipeline_component("0.0.80")
    backend = make_backend(fake, PIPELINE_COMPONENT_VERSION="0.0.80")
    backend.submit_finetune(request_for(backend))
    (put,) = fake.find("PUT", "/jobs/")
    assert put.body["properties"]["jobs"]["chat_completion_pipeline"]["componentId"].endswith("/versions/0.0.80")
    missing = make_backend(fake, PIPELINE_COMPONENT_VERSION="9.9.9")
    with pytest.raises(BackendError) as err:
        missing.submit_finetune(request_for(missing, run_id="other-run"))
    assert err.value.setting == "PIPELINE_COMPONENT_VERSION"


# ------------------------------------------------------------------------------------------------ base model
def test_retired_base_model_names_the_setting():
    fake = FakeAzureML()
    fake.seed_notebook_world(archived_base=True)
    backend = make_backend(fake, BASE_MODEL_VERSION="15")
    with pytest.raises(BackendError) as err:
        backend.resolve_base_model()
    assert err.value.setting == "BASE_MODEL" and err.value.code == "base_model_retired"
    assert "BASE_MODEL" in str(err.value) and "2025-08-30" in str(err.value)


def test_archived_model_has_no_latest_version(fake):
    fake.add_registry_model("Old-Model", "3", archived=True)
    backend = make_backend(fake, BASE_MODEL="Old-Model")
    with pytest.raises(BackendError) as err:
        backend.resolve_base_model()
    assert err.value.code == "base_model_not_found"
    assert "BASE_MODEL" in str(err.value) and "BASE_MODEL_VERSION" in str(err.value)


def test_missing_base_model_and_explicit_version(fake):
    with pytest.raises(BackendError, match="'No-Such-Model' \\(BASE_MODEL\\)"):
        make_backend(fake, BASE_MODEL="No-Such-Model").resolve_base_model()
    base = make_backend(fake, BASE_MODEL_VERSION="15").resolve_base_model()
    assert base.version == "15" and base.id.endswith("/versions/15")
    with pytest.raises(BackendError, match="'99'"):
        make_backend(fake, BASE_MODEL_VERSION="99").resolve_base_model()


# ------------------------------------------------------------------------------------------------ compute
def test_compute_missing_failed_unsupported_and_not_a_cluster(fake, backend):
    base = backend.resolve_base_model()
    with pytest.raises(BackendError) as err:
        make_backend(fake, COMPUTE_CLUSTER="nope").check_compute(base)
    assert err.value.setting == "COMPUTE_CLUSTER" and err.value.code == "compute_not_found"

    fake.add_compute("broken", "Standard_NC24ads_A100_v4", state="Failed")
    with pytest.raises(BackendError, match="provisioning state Failed") as err:
        make_backend(fake, COMPUTE_CLUSTER="broken").check_compute(base)
    assert err.value.setting == "COMPUTE_CLUSTER"

    fake.add_compute("small", "Standard_NC6")
    with pytest.raises(BackendError, match="finetune_compute_allow_list") as err:
        make_backend(fake, COMPUTE_CLUSTER="small").check_compute(base)
    assert err.value.code == "compute_size_not_allowed"

    fake.add_compute("notebook-vm", "Standard_NC24ads_A100_v4", compute_type="ComputeInstance", bare=True)
    with pytest.raises(BackendError, match="not a compute cluster"):
        make_backend(fake, COMPUTE_CLUSTER="notebook-vm").check_compute(base)


def test_notebook_unsupported_sizes_apply_without_an_allow_list(fake):
    fake.add_registry_model("Other-Model", "1", tags={"task": "chat-completion"})
    fake.add_compute("small", "Standard_NC6")
    backend = make_backend(fake, BASE_MODEL="Other-Model", COMPUTE_CLUSTER="small")
    with pytest.raises(BackendError, match="standard_nc6"):
        backend.check_compute(backend.resolve_base_model())


def test_gpus_per_node_from_list_sizes_and_serverless(fake):
    fake.add_compute("big", "Standard_NC48ads_A100_v4")
    backend = make_backend(fake, COMPUTE_CLUSTER="big")
    assert backend.check_compute(backend.resolve_base_model()).gpus_per_node == 2
    serverless = make_backend(fake, COMPUTE_CLUSTER="serverless", INSTANCE_TYPE_FINETUNE="Standard_NC24ads_A100_v4")
    info = serverless.check_compute(serverless.resolve_base_model())
    assert info.serverless and info.instance_type == "Standard_NC24ads_A100_v4" and info.gpus_per_node == 1
    serverless.submit_finetune(request_for(serverless))
    inputs = fake.find("PUT", "/jobs/")[0].body["properties"]["jobs"]["chat_completion_pipeline"]["inputs"]
    assert inputs["compute_finetune"]["value"] == "serverless"
    assert inputs["instance_type_finetune"]["value"] == "Standard_NC24ads_A100_v4"


# ------------------------------------------------------------------------------------------------ registry
def test_registration_request_shape_idempotency_and_monotonic_versions(fake, backend):
    job = backend.submit_finetune(request_for(backend))
    fake.set_job_status(job, "Completed")
    tags = {RUN_TAG: RUN, MODEL_TAG: "support-bot", DATASET_TAG: DATASET}
    first = backend.register_model(job, "autotune-support-bot", tags)
    assert first.version == "1"
    (put,) = fake.find("PUT", "/models/autotune-support-bot/versions/1")
    props = put.body["properties"]
    assert props["modelUri"] == f"azureml://jobs/{job}/outputs/trained_model"
    assert props["modelType"] == "mlflow_model"
    assert props["tags"][RUN_TAG] == RUN and props["tags"]["base_model"] == "Phi-3-mini-4k-instruct:15"
    assert "Standard_NC6s_v3" in props["tags"]["inference_compute_allow_list"]

    assert backend.register_model(job, "autotune-support-bot", tags) == first  # the event came twice
    assert len(fake.find("PUT", "/models/")) == 1
    second = backend.register_model("other-job", "autotune-support-bot", {**tags, RUN_TAG: "another-run"})
    assert second.version == "2"
    assert backend.get_model("autotune-support-bot", "2").tags[RUN_TAG] == "another-run"
    assert backend.get_model("autotune-support-bot", "7") is None


# ------------------------------------------------------------------------------------------------ endpoints
def trained(fake, backend) -> str:
    """A completed fine-tuning job: registration reads the base model from its tags."""
    job = backend.submit_finetune(request_for(backend))
    fake.set_job_status(job, "Completed")
    return job


def deployed(fake, backend):
    tags = {RUN_TAG: RUN, MODEL_TAG: "support-bot"}
    model = backend.register_model(trained(fake, backend), "autotune-support-bot", tags)
    backend.begin_endpoint("at-support-bot", {MODEL_TAG: "support-bot"})
    fake.settle()
    backend.begin_deployment("at-support-bot", "v1", model, "Standard_NC6s_v3", 1)
    return model


def test_endpoint_is_created_with_key_auth_and_managed_tag_without_waiting(fake, backend):
    info = backend.begin_endpoint("at-support-bot", {MODEL_TAG: "support-bot"})
    assert info.state == "Creating" and info.managed
    (put,) = fake.find("PUT", "/onlineEndpoints/at-support-bot")
    assert put.body["properties"]["authMode"] == "Key"
    assert put.body["tags"] == {MODEL_TAG: "support-bot", MANAGED_TAG: "true"}
    assert backend.begin_endpoint("at-support-bot", {}).name == "at-support-bot"
    assert len(fake.find("PUT", "/onlineEndpoints/at-support-bot")) == 1  # exists: not touched again
    fake.settle()
    assert backend.get_endpoint("at-support-bot").state == "Succeeded"


def test_deployment_request_shape(fake, backend):
    deployed(fake, backend)
    (put,) = fake.find("PUT", "/onlineEndpoints/at-support-bot/deployments/v-1")
    props = put.body["properties"]
    assert props["endpointComputeType"] == "Managed"
    assert props["instanceType"] == "Standard_NC6s_v3" and put.body["sku"]["capacity"] == 1
    assert props["livenessProbe"]["initialDelay"] == "PT10M"
    assert props["requestSettings"]["requestTimeout"] == "PT1M30S"
    assert props["model"].endswith("/models/autotune-support-bot/versions/1")
    state = backend.get_deployment("at-support-bot", "v1")
    assert state.phase is DeploymentPhase.CREATING and state.model_version == "1" and state.created_at
    fake.settle()
    assert backend.get_deployment("at-support-bot", "v1").phase is DeploymentPhase.SUCCEEDED
    backend.begin_deployment(
        "at-support-bot", "v1", backend.get_model("autotune-support-bot", "1"), "Standard_NC6s_v3", 1
    )
    assert len(fake.find("PUT", "/deployments/")) == 1  # exists: never begun twice


def test_instance_type_outside_the_allow_list_names_the_setting(fake, backend):
    model = backend.register_model(trained(fake, backend), "autotune-support-bot", {RUN_TAG: RUN})
    backend.begin_endpoint("at-support-bot", {})
    with pytest.raises(BackendError) as err:
        backend.begin_deployment("at-support-bot", "v1", model, "Standard_D4s_v3", 1)
    assert err.value.setting == "INSTANCE_TYPE" and "inference_compute_allow_list" in str(err.value)
    assert fake.find("PUT", "/deployments/") == []


def test_failed_deployment_reports_a_reason(fake, backend):
    deployed(fake, backend)
    fake.fail_deployment("at-support-bot", "v-1", "OutOfQuota", "Not enough quota for Standard_NC6s_v3")
    state = backend.get_deployment("at-support-bot", "v1")
    assert state.phase is DeploymentPhase.FAILED and "20% spare quota" in state.error
    # Another process (no poller of its own) reads the reason from the deployment's logs instead.
    fake.deployment_logs[("at-support-bot", "v-1")] = "loading model\nOSError: model.safetensors is corrupt"
    assert "model.safetensors is corrupt" in make_backend(fake).get_deployment("at-support-bot", "v1").error
    fake.deployment_logs.clear()
    generic = make_backend(fake).get_deployment("at-support-bot", "v1").error
    assert "failed" in generic and "20% spare" in generic


def test_quota_rejection_at_creation_is_worded(fake, backend):
    model = backend.register_model(trained(fake, backend), "autotune-support-bot", {RUN_TAG: RUN})
    backend.begin_endpoint("at-support-bot", {})
    fake.inject("PUT", "/deployments/v-1", 400, code="QuotaExceeded", message="Not enough quota available")
    with pytest.raises(BackendError) as err:
        backend.begin_deployment("at-support-bot", "v1", model, "Standard_NC6s_v3", 1)
    assert err.value.code == "quota" and "20% spare quota" in str(err.value)


def test_traffic_update_and_deletion(fake, backend):
    deployed(fake, backend)
    fake.settle()
    backend.set_traffic("at-support-bot", {"v1": 100})
    put = fake.find("PUT", "/onlineEndpoints/at-support-bot")[-1]
    assert put.body["properties"]["traffic"] == {"v-1": 100}
    info = backend.get_endpoint("at-support-bot")
    assert info.traffic == {"v1": 100} and info.deployments == ("v1",)
    fake.settle()

    backend.set_traffic("at-support-bot", {"v1": 0})
    backend.begin_delete_deployment("at-support-bot", "v1")
    assert fake.find("DELETE", "/onlineEndpoints/at-support-bot/deployments/v-1")
    assert backend.get_deployment("at-support-bot", "v1").phase is DeploymentPhase.DELETING
    fake.settle()
    assert backend.get_deployment("at-support-bot", "v1").phase is DeploymentPhase.NOT_FOUND
    backend.begin_delete_deployment("at-support-bot", "v1")  # already gone: fine

    backend.begin_delete_endpoint("at-support-bot")
    assert fake.find("DELETE", "/onlineEndpoints/at-support-bot")
    fake.settle()
    assert backend.get_endpoint("at-support-bot") is None
    backend.begin_delete_endpoint("at-support-bot")


def test_only_managed_endpoints_are_listed_and_foreign_ones_are_left_alone(fake, backend):
    backend.begin_endpoint("at-support-bot", {MODEL_TAG: "support-bot"})
    fake.endpoints["someone-elses"] = fake._endpoint_body(
        "someone-elses", {"properties": {"authMode": "Key"}}, "Succeeded"
    )
    assert [e.name for e in backend.list_managed_endpoints()] == ["at-support-bot"]
    with pytest.raises(BackendError) as err:
        backend.begin_endpoint("someone-elses", {})
    assert err.value.code == "endpoint_not_managed"


# ------------------------------------------------------------------------------------------------ scoring, activity
def test_scoring_target_from_list_keys_and_invoke(fake, backend):
    deployed(fake, backend)
    fake.settle()
    target = backend.scoring_target("at-support-bot")
    assert target.uri == "https://at-support-bot.eastus2.inference.ml.azure.com/score"
    assert target.headers["Authorization"] == f"Bearer {fake.keys['at-support-bot']['primaryKey']}"
    assert "azureml-model-deployment" not in target.headers
    (keys_call,) = fake.find("POST", "/onlineEndpoints/at-support-bot/listKeys")
    assert keys_call.query["api-version"] == "2022-02-01-preview"
    assert keys_call.headers["Authorization"].startswith("Bearer ")  # the ARM token, not the key
    assert fake.keys["at-support-bot"]["primaryKey"] not in repr(target)  # headers stay out of repr/logs

    pinned = backend.scoring_target("at-support-bot", "v1")
    assert pinned.headers["azureml-model-deployment"] == "v-1"
    payload = {"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {}}}
    assert backend.invoke(pinned, payload) == {"output": "hello from at-support-bot"}
    (score,) = fake.find("POST", "/score")
    assert score.body == payload

    fake.keys["at-support-bot"] = {"primaryKey": "rotated", "secondaryKey": "rotated-2"}
    with pytest.raises(BackendError) as err:
        backend.invoke(pinned, payload)
    assert err.value.code == "unauthorized"
    with pytest.raises(BackendError) as err:
        backend.scoring_target("at-nobody")
    assert err.value.code == "endpoint_not_found"


def test_endpoint_last_request_from_azure_monitor(fake, backend):
    backend.begin_endpoint("at-support-bot", {})
    assert backend.endpoint_last_request("at-support-bot") is None
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)

    def at(offset: int) -> str:
        return (minute + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")

    fake.add_metric("at-support-bot", at(0), 4.0)
    fake.add_metric("at-support-bot", at(5), 1.0)
    fake.add_metric("at-support-bot", at(6), 0.0)
    # the minute starting at +5 had requests: the last request was before its end (+6)
    assert datetime.fromisoformat(backend.endpoint_last_request("at-support-bot")) == minute + timedelta(minutes=6)
    (call,) = fake.find("GET", "/onlineEndpoints/at-support-bot/providers/Microsoft.Insights/metrics")[-1:]
    assert call.query["metricnames"] == "RequestsPerMinute" and call.query["interval"] == "PT1M"
    assert backend.endpoint_last_request("at-gone") is None


# ------------------------------------------------------------------------------------------------ robustness
def test_throttling_then_success_is_retried(fake, backend):
    fake.inject("GET", "/computes/gpu-cluster", 429, headers={"Retry-After": "0"})
    fake.inject("GET", "/onlineEndpoints/at-x", 503, times=2)
    assert backend.check_compute(backend.resolve_base_model()).name == "gpu-cluster"
    assert [r.status for r in fake.find("GET", "/computes/gpu-cluster")] == [429, 200]
    backend.begin_endpoint("at-x", {})
    fake.settle()
    backend.scoring_target("at-x")  # REST path without azure.ai.ml retries too
    assert [r.status for r in fake.find("GET", "/onlineEndpoints/at-x")][:3] == [503, 503, 404]


def test_throttling_that_persists_is_a_retryable_error(fake, backend):
    fake.inject("GET", "/computes/gpu-cluster", 429, times=10, headers={"Retry-After": "0"})
    with pytest.raises(BackendError) as err:
        backend.check_compute(backend.resolve_base_model())
    assert err.value.retryable


def test_missing_role_is_worded(fake, backend):
    fake.inject("PUT", "/jobs/", 403, code="AuthorizationFailed", message="does not have authorization")
    with pytest.raises(BackendError) as err:
        backend.submit_finetune(request_for(backend))
    assert "AzureML Data Scientist" in str(err.value) and fake.workspace in str(err.value)
    assert err.value.code == "forbidden" and not err.value.retryable


def test_hot_paths_never_import_azure_ai_ml():
    """The gateway and sweeper call these on cold starts: they must not load the Azure ML SDK."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = """
import sys
from tests.integration.test_azureml_backend import make_backend
from tests.fakes.aml_rest import FakeAzureML
fake = FakeAzureML()
fake.endpoints["at-bot"] = fake._endpoint_body("at-bot", {"properties": {"authMode": "Key"}}, "Succeeded")
fake.keys["at-bot"] = {"primaryKey": "k1", "secondaryKey": "k2"}
backend = make_backend(fake)
target = backend.scoring_target("at-bot")
assert backend.invoke(target, {"input_data": {}}) == {"output": "hello from at-bot"}
assert backend.endpoint_last_request("at-bot") is None
print(sorted(m for m in sys.modules if m.startswith("azure.ai.ml")))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
