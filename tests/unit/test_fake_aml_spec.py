"""The fake Azure ML REST API refuses what Azure would: bodies checked against the spec subset, routed by api-version.

A request body the spec refuses (wrong type, missing required property, value outside an enum, malformed
format) is answered 400 and recorded in ``fake.violations``; so a test driving the app through the fake fails
where Azure would refuse the request. The spec's own example bodies pass.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import SHARED_DIR
from tests.fakes.aml_rest import ARM, FakeAzureML
from tests.fakes.aml_spec import rest_spec

PREVIEW = (
    SHARED_DIR
    / "contracts"
    / "aml-rest-spec"
    / "specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/preview"
)
JOBS = "2024-01-01-preview"
ENDPOINTS = "2023-04-01-preview"


def send(fake: FakeAzureML, method: str, path: str, api_version: str, body: object = None) -> tuple[int, dict]:
    url = f"{ARM}{fake.workspace_id}{path}?api-version={api_version}"
    raw = json.dumps(body).encode() if body is not None else None
    status, payload, _ = fake.handle(method, url, {"Content-Type": "application/json"}, raw)
    return status, payload or {}


def example_job() -> dict:
    example = json.loads((PREVIEW / JOBS / "examples/Job/PipelineJob/createOrUpdate.json").read_text())
    return example["parameters"]["body"]


def endpoint_body(**properties: object) -> dict:
    return {"location": "eastus2", "properties": {"authMode": "Key", **properties}, "tags": {}}


def deployment_body(**properties: object) -> dict:
    return {
        "location": "eastus2",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_NC6s_v3", **properties},
    }


def test_the_specs_own_example_body_is_accepted(fake):
    status, _ = send(fake, "PUT", "/jobs/example-job", JOBS, example_job())
    assert status == 201 and fake.violations == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda b: b["properties"].update(jobType="Pipline"), "jobType: 'Pipline' is not a JobBase type"),
        (lambda b: b["properties"].pop("jobType"), "body.properties.jobType: required"),
        (lambda b: b.pop("properties"), "body.properties: required"),
        (lambda b: b["properties"].update(displayName=42), "displayName: expected string"),
        (lambda b: b["properties"].update(isArchived="yes"), "isArchived: expected boolean"),
        (
            lambda b: b["properties"]["inputs"]["string"].update(jobInputType="literally"),
            "jobInputType: 'literally' is not a JobInput type",
        ),
        (
            lambda b: b["properties"]["outputs"]["string"].update(mode="Copy"),
            "mode: 'Copy' is not one of ReadWriteMount, Upload, Direct",
        ),
    ],
)
def test_a_job_body_azure_would_refuse_is_a_400_naming_the_field(fake, change, says):
    body = copy.deepcopy(example_job())
    change(body)
    status, payload = send(fake, "PUT", "/jobs/bad-job", JOBS, body)
    assert status == 400 and payload["error"]["code"] == "UserError"
    assert says in payload["error"]["message"], payload["error"]["message"]
    assert "bad-job" not in fake.jobs  # refused: nothing was created
    [(recorded, message)] = fake.violations
    assert recorded.path.endswith("/jobs/bad-job") and says in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"properties": {"authMode": "Key"}}, "body.location: required"),
        (endpoint_body(authMode="Password"), "'Password' is not one of AMLToken, Key, AADToken"),
        (endpoint_body(traffic={"blue": "all"}), "traffic.blue: expected integer"),
        (endpoint_body(traffic={"blue": 2**40}), "traffic.blue: 1099511627776 outside"),  # int32
    ],
)
def test_an_endpoint_body_azure_would_refuse_is_a_400(fake, body, says):
    status, payload = send(fake, "PUT", "/onlineEndpoints/at-x", "2022-02-01-preview", body)
    assert status == 400 and says in payload["error"]["message"], payload
    assert "at-x" not in fake.endpoints


def test_formats_are_checked(fake):
    send(fake, "PUT", "/onlineEndpoints/at-x", ENDPOINTS, endpoint_body())
    fake.settle()
    bad = deployment_body(livenessProbe={"initialDelay": "10 minutes"})
    status, payload = send(fake, "PUT", "/onlineEndpoints/at-x/deployments/blue", ENDPOINTS, bad)
    assert status == 400 and "initialDelay: '10 minutes' is not a valid duration" in payload["error"]["message"]
    good = deployment_body(livenessProbe={"initialDelay": "PT10M"})
    status, _ = send(fake, "PUT", "/onlineEndpoints/at-x/deployments/blue", ENDPOINTS, good)
    assert status in (200, 201) and len(fake.violations) == 1


def test_requests_are_routed_by_api_version(fake):
    status, payload = send(fake, "GET", "/jobs/nope", "2020-01-01")
    assert status == 400 and payload["error"]["code"] == "InvalidApiVersionParameter"
    assert "2024-01-01-preview" in payload["error"]["message"]
    status, payload = send(fake, "GET", "/jobs/nope", JOBS)  # a version the operation has: routed, then 404
    assert status == 404
    # The endpoint PUT exists at two versions in the subset; a third is refused.
    assert send(fake, "PUT", "/onlineEndpoints/at-y", "2021-10-01", endpoint_body())[0] == 400


def test_the_checker_reads_every_definition_of_the_subset():
    spec = rest_spec()
    assert spec.validate_definition({"jobType": "Pipeline"}, "JobBase", JOBS) == []
    assert spec.validate_definition({"jobType": "Command"}, "JobBase", JOBS)  # a command job needs more
    assert spec.validate_definition({"jobType": "AutoML"}, "JobBase", JOBS) == []  # not in the subset: base only
    errors = spec.validate_definition({"authMode": "Key", "traffic": {"a": 1.5}}, "OnlineEndpoint", ENDPOINTS)
    assert errors == ["OnlineEndpoint.traffic.a: expected integer, got float 1.5"]
