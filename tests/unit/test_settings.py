import json
from pathlib import Path

import pytest

from shared.settings import SPEC, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_local_defaults_load():
    settings = load_settings(LOCAL)
    assert settings.ml_backend == "local"
    assert settings.test_split_percent == 10
    assert settings.reconcile_schedule == "0 */1 * * * *"


def test_missing_storage_names_the_setting():
    with pytest.raises(SettingsError) as err:
        load_settings({})
    assert "AzureWebJobsStorage" in str(err.value)


def test_azureml_requires_workspace_settings_by_name():
    with pytest.raises(SettingsError) as err:
        load_settings({**LOCAL, "ML_BACKEND": "azureml", "AZURE_SUBSCRIPTION_ID": "sub"})
    message = str(err.value)
    assert "AZURE_RESOURCE_GROUP is required when ML_BACKEND=azureml" in message
    assert "AZUREML_WORKSPACE_NAME is required" in message
    assert "AZURE_SUBSCRIPTION_ID" not in message


def test_every_malformed_setting_is_named_at_once():
    with pytest.raises(SettingsError) as err:
        load_settings({**LOCAL, "TEST_SPLIT_PERCENT": "ten", "FINETUNE_PARAMETERS": "[1]", "ML_BACKEND": "gcp"})
    assert len(err.value.problems) == 3
    assert "TEST_SPLIT_PERCENT is malformed" in str(err.value)
    assert "FINETUNE_PARAMETERS is malformed: expected a JSON object" in str(err.value)
    assert "ML_BACKEND must be one of local, azureml" in str(err.value)


def test_out_of_range_value_is_named():
    with pytest.raises(SettingsError, match="TEST_SPLIT_PERCENT must be at most 50"):
        load_settings({**LOCAL, "TEST_SPLIT_PERCENT": "90"})


def test_secrets_stay_out_of_repr_and_summary():
    settings = load_settings({**LOCAL, "GATEWAY_API_KEYS": "sk-secret-1"})
    assert "sk-secret-1" not in repr(settings)
    assert "sk-secret-1" not in json.dumps(settings.public_summary())
    assert settings.gateway_api_keys == ("sk-secret-1",)


def secret_values() -> dict[str, str]:
    """A distinct, recognisable value for every secret setting (the storage one a full connection string)."""
    values = {spec.env: f"secret-value-of-{spec.env}" for spec in SPEC if spec.secret}
    values["AzureWebJobsStorage"] = (
        "DefaultEndpointsProtocol=https;AccountName=autotunesa;AccountKey=c2VjcmV0LWFjY291bnQta2V5;"
        "EndpointSuffix=core.windows.net"
    )
    return values


def test_no_secret_setting_shows_in_any_repr_of_settings_or_what_holds_them():
    from shared.runs.context import RunContext
    from shared.sweeper import Policy

    secrets = secret_values()
    settings = load_settings(secrets)
    views = [repr(settings), str(settings), f"{settings!r}", repr(Policy.from_settings(settings))]
    views.append(repr(RunContext(settings=settings, ledger=None)))  # type: ignore[arg-type]
    views.append(repr([settings, {"settings": settings}]))
    for view in views:
        for env, value in secrets.items():
            assert value not in view, f"{env} shows in {view[:200]}"
        assert "c2VjcmV0LWFjY291bnQta2V5" not in view  # not even the account key alone
    assert "gateway_api_keys=<set>" in repr(settings) and "events_topic_endpoint=''" in repr(settings)
    assert "base_model='" in repr(settings)  # everything else still shows, to debug with
    assert settings.storage_connection_string == secrets["AzureWebJobsStorage"]  # the values themselves are intact


# Azure-only identity-based storage settings: absent locally, because the blob extension (and the host) treat a
# defined AzureWebJobsStorage__blobServiceUri / __accountName, even an empty one, as "connect with a managed
# identity" instead of the connection string.
IDENTITY_STORAGE = {spec.env for spec in SPEC if spec.env.startswith("AzureWebJobsStorage__")}


def test_sample_settings_list_every_setting_and_load():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    values = sample["Values"]
    missing = [spec.env for spec in SPEC if spec.env not in values and spec.env not in IDENTITY_STORAGE]
    assert missing == []
    # present-but-empty identity settings make the blob extension's SDK BlobClient use a managed identity
    assert not IDENTITY_STORAGE & set(values)
    settings = load_settings({k: v for k, v in values.items() if isinstance(v, str)})
    assert settings.storage_connection_string == "UseDevelopmentStorage=true"
