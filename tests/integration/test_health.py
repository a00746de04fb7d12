"""GET /api/health through the devhost with the real app: version, settings and storage state, no secrets."""

from __future__ import annotations

import json

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


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_health_with_storage_down_answers_503_at_once_naming_what_is_down(
    health_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage unreachable: the health route answers in seconds (no SDK retries with back-off, which took about
    70 s), 503, and says which storage services are down, without secrets."""
    from concurrent.futures import ThreadPoolExecutor

    import azure.functions as func

    from functions.admin import health
    from shared.settings import reset_settings

    port = closed_port()
    down = CONNECTION.replace(":10000/", f":{port}/").replace(":10002/", f":{port}/")
    monkeypatch.setenv("AzureWebJobsStorage", down)
    monkeypatch.setenv("GATEWAY_API_KEYS", API_KEYS)
    reset_settings()
    request = func.HttpRequest(method="GET", url="/api/health", body=b"")
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(health, request).result(timeout=20)  # before: ~70 s of retries
    assert response.status_code == 503
    text = response.get_body().decode()
    report = json.loads(text)
    assert report["status"] == "degraded" and report["down"] == ["storage.blob", "storage.table"]
    assert report["storage"]["ok"] is False
    assert report["storage"]["blob"]["ok"] is False and report["storage"]["table"]["ok"] is False
    assert report["storage"]["blob"]["error"]  # the kind of failure, for the operator
    assert_no_secrets(text)
