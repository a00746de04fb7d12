"""Every Bicep file parses, modules resolve, and the security-relevant choices stay as designed.

These run offline with pycep-parser (requirements-dev.txt); checkov runs separately in its own venv
(scripts/infra-check.sh) because its pinned dependencies conflict with the app's.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in roles by id: the least-privilege set the design grants, and the broad ones it must never grant.
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": "Monitoring Reader",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "f6c7c914-8db3-469d-8ca1-694a8f32e121": "AzureML Data Scientist",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7388ccec9": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}


@cache
def parse(path: Path) -> dict[str, Any]:
    """Parsed once per file per session (lark is not fast); callers must not mutate the result."""
    return BicepParser().parse(file_path=path)


def resources_of(path: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    """The resources of one type that the file creates (not ``existing`` references)."""
    return {
        name: body
        for name, body in parse(path)["resources"].items()
        if body.get("type") == resource_type and not body.get("existing")
    }


def test_the_templates_are_all_here() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert {"main.bicep", "modules/functionapp.bicep", "hooks/eventgrid.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed["resources"] or parsed.get("modules"), f"{path} declares nothing"


def test_the_parser_rejects_broken_bicep(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'a'\n")
    with pytest.raises(Exception):  # noqa: B017 - lark raises several types, any of them means "rejected"
        parse(broken)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_module_path_exists(path: Path) -> None:
    for name, module in parse(path).get("modules", {}).items():
        target = path.parent / module["detail"]["path"]
        assert target.is_file(), f"{path.name}: module {name} points at missing {target}"


def test_registry_modules_are_not_used() -> None:
    # CI parses and scans offline: br:/ts: modules would need a registry download, and checkov would skip them.
    for path in BICEP_FILES:
        assert not re.search(r"module\s+\w+\s+'(br|ts)[:/]", path.read_text()), path


def test_storage_allows_identity_access_only() -> None:
    [storage] = resources_of(INFRA / "modules" / "storage.bicep", "Microsoft.Storage/storageAccounts").values()
    properties = storage["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_application_insights_has_local_auth_disabled() -> None:
    [component] = resources_of(INFRA / "modules" / "monitoring.bicep", "Microsoft.Insights/components").values()
    assert component["config"]["properties"]["DisableLocalAuth"] is True


def test_function_app_runs_python_311_on_flex_consumption_as_the_user_identity() -> None:
    path = INFRA / "modules" / "functionapp.bicep"
    [plan] = resources_of(path, "Microsoft.Web/serverfarms").values()
    assert plan["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    [site] = resources_of(path, "Microsoft.Web/sites").values()
    config = site["config"]
    assert config["identity"]["type"] == "UserAssigned"
    assert config["properties"]["httpsOnly"] is True
    app_config = config["properties"]["functionAppConfig"]
    assert app_config["runtime"] == {"name": "python", "version": "3.11"}
    assert app_config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"


def test_compute_cluster_scales_to_zero() -> None:
    [cluster] = resources_of(
        INFRA / "modules" / "ml-wiring.bicep", "Microsoft.MachineLearningServices/workspaces/computes"
    ).values()
    assert cluster["config"]["condition"] == "createComputeCluster"
    scale = cluster["config"]["config"]["properties"]["properties"]["scaleSettings"]
    assert scale["minNodeCount"] == 0


def test_datastore_is_identity_based() -> None:
    [datastore] = resources_of(
        INFRA / "modules" / "ml-wiring.bicep", "Microsoft.MachineLearningServices/workspaces/datastores"
    ).values()
    properties = datastore["config"]["properties"]
    assert properties["credentials"] == {"credentialsType": "None"}
    assert properties["datastoreType"] == "AzureBlob"


def test_roles_are_the_least_privilege_set() -> None:
    text = "\n".join(path.read_text() for path in BICEP_FILES)
    granted = set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))
    assert not granted & set(BROAD_ROLES), [BROAD_ROLES[r] for r in granted & set(BROAD_ROLES)]
    assert set(ROLES) <= granted, [ROLES[r] for r in set(ROLES) - granted]
    roles = (INFRA / "modules" / "roles.bicep").read_text()
    wiring = (INFRA / "modules" / "ml-wiring.bicep").read_text()
    # AzureML Data Scientist and Monitoring Reader are scoped to the workspace, not the resource group.
    assert "f6c7c914-8db3-469d-8ca1-694a8f32e121" in wiring and "43d0d8ad-25c7-4714-9337-8ba259a9fe05" in wiring
    assert wiring.count("scope: workspace") == 2
    # Readers of prepared data (workspace + cluster identities) are scoped to the training container only.
    reader_blocks = [
        block for block in re.split(r"\nresource ", roles) if "storageBlobDataReader" in block and "scope:" in block
    ]
    assert len(reader_blocks) == 2 and all("scope: trainingContainer" in block for block in reader_blocks)


def test_no_output_carries_a_secret() -> None:
    # azd writes every output of main.bicep to .azure/<env>/.env in clear, and deployment history keeps them.
    for path in BICEP_FILES:
        parsed = parse(path)
        secure = {
            name
            for name, param in parsed["parameters"].items()
            if any(decorator["type"] == "secure" for decorator in param["decorators"])
        }
        for name, output in parsed.get("outputs", {}).items():
            value = json.dumps(output["value"])
            assert not re.search(r'"list[A-Z]\w*"', value), f"{path.name}: output {name} calls a list*() function"
            assert not any(f'"{param}"' in value for param in secure), f"{path.name}: output {name} uses a secure param"


def test_workspace_children_take_the_workspace_region_as_a_parameter() -> None:
    # Not workspace.location: that is a run-time property of an `existing` workspace (BCP120 at `azd up`).
    wiring = parse(INFRA / "modules" / "ml-wiring.bicep")
    assert "location" in wiring["parameters"]
    for resource in ("cluster", "systemTopic"):
        config = wiring["resources"][resource]["config"]
        assert config.get("config", config)["location"] == "location", resource
    main = parse(INFRA / "main.bicep")
    assert main["modules"]["mlWiring"]["config"]["params"]["location"] == "workspaceLocation"
    assert main["modules"]["mlWorkspace"]["config"]["config"]["params"]["location"] == "workspaceLocation"
    text = (INFRA / "main.bicep").read_text()
    assert "var workspaceLocation = !empty(mlWorkspaceLocation) ? mlWorkspaceLocation : location" in text
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["mlWorkspaceLocation"]["value"] == "${AUTOTUNE_ML_LOCATION=}"


def test_created_workspace_has_a_basic_registry_without_admin_user() -> None:
    path = INFRA / "modules" / "ml-workspace.bicep"
    [registry] = resources_of(path, "Microsoft.ContainerRegistry/registries").values()
    assert registry["config"]["sku"] == {"name": "Basic"}
    assert registry["config"]["properties"]["adminUserEnabled"] is False
    [workspace] = resources_of(path, "Microsoft.MachineLearningServices/workspaces").values()
    assert "registry" in json.dumps(workspace["config"]["properties"]["containerRegistry"])
    params = parse(INFRA / "main.bicep")["modules"]["mlWorkspace"]["config"]["config"]["params"]
    assert re.fullmatch(r"crml\$\{resourceToken\}", params["containerRegistryName"])  # 4 + 13 alphanumerics


def test_lifecycle_topic_is_granted_to_the_app_identity_and_wired_to_the_app() -> None:
    [topic] = resources_of(INFRA / "modules" / "events-topic.bicep", "Microsoft.EventGrid/topics").values()
    properties = topic["config"]["properties"]
    assert properties["disableLocalAuth"] is True and properties["inputSchema"] == "EventGridSchema"
    sender = parse(INFRA / "modules" / "events-topic-sender.bicep")
    [grant] = [r for r in sender["resources"].values() if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert grant["config"]["scope"] == "topic" and grant["config"]["properties"]["principalId"] == "appPrincipalId"
    assert "eventGridDataSender" in json.dumps(grant["config"]["properties"]["roleDefinitionId"])
    main_text = (INFRA / "main.bicep").read_text()
    # Created or existing, the endpoint reaches EVENTS_TOPIC_ENDPOINT; a hand-set endpoint still works.
    assert "lifecycleTopic.?outputs.?endpoint ?? lifecycleTopicSender.?outputs.?endpoint ?? eventsTopicEndpoint" in (
        main_text
    )
    assert "EVENTS_TOPIC_ENDPOINT: eventsEndpoint" in main_text
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["eventsTopicName"]["value"] == "${AUTOTUNE_EVENTS_TOPIC=}"
    assert parameters["createEventsTopic"]["value"] == "${AUTOTUNE_CREATE_EVENTS_TOPIC=false}"


def test_both_python_worker_telemetry_switches_are_set() -> None:
    # Worker 4.34 reads PYTHON_ENABLE_OPENTELEMETRY (the app configures the exporter at start-up); newer workers
    # read PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY and configure it themselves.
    text = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "PYTHON_ENABLE_OPENTELEMETRY: 'true'" in text
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'" in text
    assert '"telemetryMode": "OpenTelemetry"' in (ROOT / "host.json").read_text()
