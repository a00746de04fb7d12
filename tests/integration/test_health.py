"""GET /api/health through the devhost with the real app: version, settings and storage state, no secrets."""

from __future__ import annotations

import httpx
import pytest

from devhost.testing import DevHostProcess
from shared import __version__

# Azurite's well-known development account key (public, in Microsoft's docs): a full connection string, so
# the test can check that neither it nor the key shows up in the report.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={AZURITE_KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
API_KEYS = "health-secret-key-1,health-secret-key-2"


def assert_no_secrets(text: str) -> None:
    for secret in (AZURITE_KEY, CONNECTION, API_KEYS, *API_KEYS.split(",")):
        assert secret not in text


@pytest.fixture
def health_env(app_env: dict[str, str]) -> dict[str, str]:
    return {**app_env, "AzureWebJobsStorage": CONNECTION, "GATEWAY_API_KEYS": API_KEYS}


def get_health(env: dict[str, str]) -> httpx.Response:
    """GET /api/health from the real app in a devhost started with ``env``."""
    with DevHostProcess(env=env) as host:
        return httpx.get(f"{host.url}/api/health", timeout=60)


def test_health_reports_version_and_storage_without_secrets(health_env: dict[str, str]) -> None:
    response = get_health(health_env)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "ok"
    assert report["version"] == __version__
    assert report["storage"]["ok"] is True
    assert report["settings"]["ok"] is True
    assert_no_secrets(response.text)


def test_health_names_a_bad_setting_without_secrets(health_env: dict[str, str]) -> None:
    response = get_health({**health_env, "MAX_LINE_BYTES": "lots"})
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded"
    assert report["settings"]["ok"] is False
    assert any("MAX_LINE_BYTES" in problem for problem in report["settings"]["problems"])
    assert_no_secrets(response.text)
