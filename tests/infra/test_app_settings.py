"""Every app setting the code reads is set by the Bicep, or documented as optional in Azure with a reason.

The lists live in scripts/settings_table.py (which also renders the README's configuration reference):
``bicep_app_settings()`` reads the Function App's settings out of the parsed Bicep, ``AZURE_OPTIONAL``
says why the rest may stay unset. A new SPEC entry fails here until it lands in one of the two.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.settings_table import (
    AZURE_OPTIONAL,
    FUNCTION_APP_BICEP,
    PLATFORM_SETTINGS,
    bicep_app_settings,
    render_table,
)
from shared.settings import SPEC

ROOT = Path(__file__).resolve().parents[2]
SPEC_NAMES = {spec.env for spec in SPEC}


@pytest.fixture(scope="module")
def infra() -> dict[str, str]:
    return bicep_app_settings()


def test_every_setting_the_code_reads_is_set_by_the_bicep_or_optional_in_azure(infra: dict[str, str]) -> None:
    missing = sorted(SPEC_NAMES - set(infra) - set(AZURE_OPTIONAL))
    assert missing == [], (
        f"{missing}: read by shared/settings.py but neither set in {FUNCTION_APP_BICEP.relative_to(ROOT)} "
        "(appSettings, or main.bicep extraSettings) nor listed with a reason in AZURE_OPTIONAL in "
        "scripts/settings_table.py"
    )


def test_the_optional_list_is_truthful(infra: dict[str, str]) -> None:
    assert sorted(set(AZURE_OPTIONAL) - SPEC_NAMES) == [], "AZURE_OPTIONAL names settings SPEC no longer has"
    assert sorted(set(AZURE_OPTIONAL) & set(infra)) == [], "listed as optional but the Bicep sets it"
    assert all(reason.strip() for reason in AZURE_OPTIONAL.values())


def test_the_bicep_sets_no_unknown_setting(infra: dict[str, str]) -> None:
    unknown = sorted(set(infra) - SPEC_NAMES - PLATFORM_SETTINGS)
    assert unknown == [], f"{unknown}: set by the Bicep but unknown to shared/settings.py (a typo?)"


def test_settings_required_on_azure_are_always_set(infra: dict[str, str]) -> None:
    for spec in SPEC:
        if spec.required_when == "ML_BACKEND=azureml":
            assert infra.get(spec.env) == "azd up", spec.env
    assert infra["ML_BACKEND"] == "azd up"


def test_gateway_keys_come_from_key_vault_and_no_secret_is_a_literal() -> None:
    text = FUNCTION_APP_BICEP.read_text()
    assert re.search(r"GATEWAY_API_KEYS: '@Microsoft\.KeyVault\(SecretUri=\$\{gatewayKeysSecretUri\}\)'", text)
    assert "keyVaultReferenceIdentity: identityId" in text
    for spec in SPEC:
        if spec.secret:
            literal = re.search(rf"^\s*{re.escape(spec.env)}: '([^'$@]+)'\s*$", text, re.M)
            assert not literal, f"{spec.env} is a secret but has a literal value in the Bicep"


def _bindings() -> list[dict]:
    """Every binding of the app, indexed the way the Functions host does (in a child: get_functions is once)."""
    code = (
        "import json, function_app\n"
        "print(json.dumps([b for f in function_app.app.get_functions() "
        "for b in f.get_bindings_dict()['bindings']], default=str))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_setting_a_binding_names_is_set_in_azure(infra: dict[str, str]) -> None:
    # The host resolves %NAME% in binding expressions (timer schedules, blob paths) from app settings only:
    # the Python defaults do not apply there, so an unset one stops the function from being indexed.
    bindings = _bindings()
    names = {name for binding in bindings for value in binding.values() for name in re.findall(r"%(\w+)%", str(value))}
    assert {"RECONCILE_SCHEDULE", "IDLE_SWEEP_SCHEDULE", "TRAINING_CONTAINER"} <= names
    assert sorted(name for name in names if infra.get(name) != "azd up") == []
    for connection in {binding["connection"] for binding in bindings if binding.get("connection")}:
        assert f"{connection}__accountName" in infra or f"{connection}__blobServiceUri" in infra, connection


def test_schedule_defaults_match_the_app_defaults() -> None:
    text = FUNCTION_APP_BICEP.read_text()
    defaults = {spec.env: spec.default for spec in SPEC}
    assert f"param reconcileSchedule string = '{defaults['RECONCILE_SCHEDULE']}'" in text
    assert f"param idleSweepSchedule string = '{defaults['IDLE_SWEEP_SCHEDULE']}'" in text


def test_settings_table_lists_every_setting_once() -> None:
    table = render_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [spec.env for spec in SPEC]
    assert "Azure: set by `azd up`" in table
    assert "AUTOTUNE_BASE_MODEL" in table  # optional settings name the azd env variable that sets them


def test_an_unresolved_key_vault_reference_fails_closed() -> None:
    # If the identity cannot read the secret, App Service hands the reference text itself to the app.
    from shared.settings import SettingsError, load_settings

    reference = "@Microsoft.KeyVault(SecretUri=https://kv-abc.vault.azure.net/secrets/gateway-api-keys)"
    with pytest.raises(SettingsError) as err:
        load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "GATEWAY_API_KEYS": reference})
    assert "GATEWAY_API_KEYS is an unresolved Key Vault reference" in str(err.value)
    assert reference not in str(err.value)
