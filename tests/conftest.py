"""Shared fixtures: a real Azurite (started here if none runs) and isolated settings per test.

Each test gets its own table prefix and container, so tests (and developers running them side by side)
never see each other's state on one Azurite.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = ROOT.parent / "shared"  # ../shared: design, contracts and data tools beside the project
AZURITE_CONN = "UseDevelopmentStorage=true"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Azurite on the default ports; reuses one that runs already (``make test`` starts one)."""
    from devhost.azurite import AzuriteError, azurite_running, launch_azurite

    if azurite_running():
        yield AZURITE_CONN
        return
    try:
        proc = launch_azurite(tmp_path_factory.mktemp("azurite"))
    except AzuriteError as exc:
        pytest.fail(str(exc))
    try:
        yield AZURITE_CONN
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def app_env(azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for one test: Azurite storage, its own tables/container/state dir, local backend."""
    from tests.isolation import isolated_env

    env = isolated_env(azurite, tmp_path / "state", GATEWAY_API_KEYS="test-key-1,test-key-2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from shared.backends import reset_backends
    from shared.ledger import reset_ledger
    from shared.settings import reset_settings

    reset_settings()
    reset_ledger()
    reset_backends()
    yield env
    reset_settings()
    reset_ledger()
    reset_backends()


@pytest.fixture
def settings(app_env: dict[str, str]):
    from shared.settings import get_settings

    return get_settings()


@pytest.fixture
def ledger(settings):
    from shared.ledger import Ledger

    return Ledger(settings)


@pytest.fixture
def fake():
    """The fake Azure ML REST API seeded with the notebook's world (tests/fakes/aml_rest.py)."""
    from tests.fakes.aml_rest import FakeAzureML

    world = FakeAzureML()
    world.seed_notebook_world()
    return world


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AZURE_CORE_ONLY_LOG_ERRORS", "1")
