"""The first Azure run: a default base model that fine-tunes today, region-unique endpoint names, lineage from the
job, the component version whose inputs ship, and the states Azure reports that used to be missed.

Against the fake Azure ML REST API (tests/fakes/aml_rest.py) through the real ``azure-ai-ml`` client.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from shared.backends.azureml.finetune import job_state
from shared.backends.base import MODEL_TAG, RUN_TAG, BackendError, JobState
from shared.component_inputs import shipped_component_version
from shared.ledger import ModelRecord
from shared.names import endpoint_name, endpoint_name_for, endpoint_suffix
from shared.runs.context import RunContext
from shared.settings import SPEC, SettingsError, load_settings
from tests.conftest import SHARED_DIR
from tests.fakes.aml_rest import FakeAzureML
from tests.integration.test_azureml_backend import make_backend, request_for

MFE = "specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/preview"
ENDPOINT_SPEC = SHARED_DIR / "contracts" / "aml-rest-spec" / MFE / "2023-04-01-preview" / "mfe.json"


def default(name: str) -> str | None:
    return next(spec.default for spec in SPEC if spec.env == name)


# ------------------------------------------------------------------------------------------------ base model
def test_the_default_base_model_is_not_the_retired_notebook_model(fake):
    assert default("BASE_MODEL") == "Phi-4-mini-instruct"
    backend = make_backend(fake, BASE_MODEL=default("BASE_MODEL"))
    base = backend.resolve_base_model()
    assert (base.name, base.version) == ("Phi-4-mini-instruct", "7")
    job = backend.submit_finetune(request_for(backend))
    assert fake.jobs[job]["properties"]["tags"]["autotune-base-model"] == "Phi-4-mini-instruct:7"


def test_the_notebook_model_stays_a_choice_and_its_retirement_is_an_error():
    fake = FakeAzureML()
    fake.seed_notebook_world(archived_base=True)
    with pytest.raises(BackendError) as err:
        make_backend(fake, BASE_MODEL="Phi-3-mini-4k-instruct", BASE_MODEL_VERSION="15").resolve_base_model()
    assert err.value.code == "base_model_retired" and err.value.setting == "BASE_MODEL"


def test_a_deprecated_base_model_warns_but_still_runs(fake, caplog):
    fake.registry_models[("Phi-4-mini-instruct", "7")]["properties"]["tags"].update(
        {"FinetuneDeprecationDate": "2020-01-31", "FinetuneRetirementDate": "2999-12-31"}
    )
    with caplog.at_level(logging.WARNING, logger="shared.backends.azureml.finetune"):
        base = make_backend(fake, BASE_MODEL="Phi-4-mini-instruct").resolve_base_model()
    assert base.name == "Phi-4-mini-instruct"
    [record] = [r for r in caplog.records if "deprecated for fine-tuning" in r.getMessage()]
    assert "2020-01-31" in record.getMessage() and "2999-12-31" in record.getMessage()
    assert record.setting == "BASE_MODEL"


# ------------------------------------------------------------------------------------------------ lineage
def test_registration_reads_the_base_model_from_the_job_not_from_todays_settings(fake):
    phi4 = fake.registry_models[("Phi-4-mini-instruct", "7")]["properties"]["tags"]
    phi4["inference_compute_allow_list"] = "['Standard_NC48ads_A100_v4']"
    trained_on_phi3 = make_backend(fake)  # BASE_MODEL=Phi-3-mini-4k-instruct
    job = trained_on_phi3.submit_finetune(request_for(trained_on_phi3))
    fake.set_job_status(job, "Completed")
    # BASE_MODEL changed before the job finished: the lineage is still the job's.
    now = make_backend(fake, BASE_MODEL="Phi-4-mini-instruct")
    version = now.register_model(job, "autotune-support-bot", {RUN_TAG: "r1", MODEL_TAG: "support-bot"})
    (put,) = fake.find("PUT", f"/models/autotune-support-bot/versions/{version.version}")
    tags = put.body["properties"]["tags"]
    assert tags["base_model"] == "Phi-3-mini-4k-instruct:15"
    assert "Standard_NC6s_v3" in tags["inference_compute_allow_list"]  # Phi-3's list, not Phi-4's
    # The deployment check uses that list: a size Phi-3 can serve on passes.
    now.begin_endpoint("at-support-bot", {})
    fake.settle()
    now.begin_deployment("at-support-bot", "v1", version, "Standard_NC6s_v3", 1)


# ------------------------------------------------------------------------------------------------ component
def test_the_pipeline_component_is_pinned_to_the_version_whose_inputs_ship(fake):
    shipped = json.loads((Path(__file__).parents[2] / "shared/backends/chat_completion_inputs.json").read_text())
    assert default("PIPELINE_COMPONENT_VERSION") == shipped["version"] == shipped_component_version() == "0.0.82"
    backend = make_backend(fake)
    backend.submit_finetune(request_for(backend))
    (get,) = fake.find("GET", "/components/chat_completion_pipeline/versions/0.0.82")
    assert get.method == "GET"
    assert fake.find("GET", "/components/chat_completion_pipeline/versions") == [get]  # no 'latest' lookup


def test_another_component_version_is_checked_against_its_own_inputs(fake):
    fake.add_pipeline_component("0.0.90")
    newer = fake.registry_components[("chat_completion_pipeline", "0.0.90")]["properties"]["componentSpec"]
    del newer["inputs"]["lr_scheduler_type"]  # an input the newer version no longer has
    backend = make_backend(fake, PIPELINE_COMPONENT_VERSION="0.0.90")
    with pytest.raises(BackendError) as err:
        backend.submit_finetune(request_for(backend))
    assert err.value.code == "component_inputs_changed" and err.value.setting == "PIPELINE_COMPONENT_VERSION"
    assert "lr_scheduler_type" in str(err.value) and "0.0.82" in str(err.value)
    assert fake.find("PUT", "/jobs/") == []
    fake.add_pipeline_component("0.0.91")  # same inputs as shipped: accepted
    backend = make_backend(fake, PIPELINE_COMPONENT_VERSION="0.0.91")
    assert backend.submit_finetune(request_for(backend))


# ------------------------------------------------------------------------------------------------ states
def test_job_status_scheduled_is_queued():
    assert job_state("Scheduled") is JobState.QUEUED
    spec = json.loads(
        (SHARED_DIR / "contracts" / "aml-rest-spec" / MFE / "2024-01-01-preview" / "mfe.json").read_text()
    )
    for status in spec["definitions"]["JobStatus"]["enum"]:
        assert job_state(status) is not JobState.RUNNING or status in {
            "Running",
            "Finalizing",
            "CancelRequested",
            "NotResponding",
            "Paused",
            "Unknown",
        }, status


def test_a_canceled_endpoint_rolls_the_version_back_instead_of_waiting(fake, ledger):
    from shared.reconcile import steps

    backend = make_backend(fake)
    ctx = RunContext(settings=backend.settings, ledger=ledger, backend=backend)
    endpoint = endpoint_name_for(backend.settings, "support-bot")
    backend.begin_endpoint(endpoint, {MODEL_TAG: "support-bot"})
    fake.endpoints[endpoint]["properties"]["provisioningState"] = "Canceled"
    model = ledger.create(ModelRecord(model="support-bot", desired_version="1", desired_run_id="r1"))
    assert steps.start(ctx, model)
    model = ledger.get(ModelRecord, "models", "support-bot")
    assert model.deployment["endpoint"] == endpoint
    assert steps.ensure_endpoint(ctx, model) is False
    model = ledger.get(ModelRecord, "models", "support-bot")
    assert model.state == "failed" and model.deployment == {}
    assert "provisioning ended canceled" in model.error


def test_only_key_endpoints_are_scored_and_no_token_is_asked_for(fake):
    backend = make_backend(fake)
    fake.endpoints["tok"] = fake._endpoint_body("tok", {"properties": {"authMode": "AADToken"}}, "Succeeded")
    with pytest.raises(BackendError) as err:
        backend.scoring_target("tok")
    assert err.value.code == "endpoint_auth_mode" and "key-auth endpoints only" in str(err.value)
    assert fake.find("POST", "/token") == []


# ------------------------------------------------------------------------------------------------ names
def test_endpoint_names_are_region_unique_stable_and_within_azure_limits(fake):
    spec = json.loads(ENDPOINT_SPEC.read_text())
    [name_param] = [
        p
        for p in spec["paths"][next(k for k in spec["paths"] if k.endswith("/onlineEndpoints/{endpointName}"))]["get"][
            "parameters"
        ]
        if isinstance(p, dict) and p.get("name") == "endpointName"
    ]
    pattern = re.compile(name_param.get("pattern") or r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
    one = make_backend(fake).settings
    other = load_settings({**_env(fake), "AZUREML_WORKSPACE_NAME": "another-workspace"})
    suffix = endpoint_suffix(one)
    assert re.fullmatch(r"[a-z0-9]{6}", suffix) and suffix == endpoint_suffix(make_backend(fake).settings)
    assert suffix != endpoint_suffix(other)
    assert endpoint_name_for(one, "support-bot") == f"at-support-bot-{suffix}"
    for model in ("a", "support-bot", "x" * 32, "a-" + "b" * 29, "m" * 31 + "1"):
        for settings in (one, other):
            name = endpoint_name_for(settings, model)
            assert 3 <= len(name) <= 32 and pattern.fullmatch(name), name
    assert endpoint_name_for(one, "x" * 32) != endpoint_name_for(one, "x" * 31 + "y")
    pinned = load_settings({**_env(fake), "ENDPOINT_NAME_SUFFIX": "team7"})
    assert endpoint_name_for(pinned, "support-bot") == "at-support-bot-team7"
    local = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert endpoint_name_for(local, "support-bot") == endpoint_name("support-bot") == "at-support-bot"
    with pytest.raises(SettingsError, match="ENDPOINT_NAME_SUFFIX"):
        load_settings({**_env(fake), "ENDPOINT_NAME_SUFFIX": "Not-Valid"})


def test_a_name_taken_elsewhere_in_the_region_says_so(fake):
    backend = make_backend(fake)
    name = endpoint_name_for(backend.settings, "support-bot")
    fake.inject("PUT", f"/onlineEndpoints/{name}", 409, code="Conflict", message="Endpoint name already exists")
    with pytest.raises(BackendError) as err:
        backend.begin_endpoint(name, {})
    assert err.value.code == "endpoint_name_taken" and err.value.setting == "ENDPOINT_NAME_SUFFIX"
    assert "unique per region" in str(err.value)


def _env(fake: FakeAzureML) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ML_BACKEND": "azureml",
        "AZURE_SUBSCRIPTION_ID": fake.subscription,
        "AZURE_RESOURCE_GROUP": fake.resource_group,
        "AZUREML_WORKSPACE_NAME": fake.workspace,
    }
