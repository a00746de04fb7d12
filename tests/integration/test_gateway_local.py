"""The whole serving path with nothing stood in: the ``openai`` client -> the devhost running ``function_app`` ->
the gateway -> the local backend's ``scoring_target`` (its state files) -> a real local endpoint (router + model
server process) serving the untrained tiny model. No resolver seam: this is what a developer runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devhost.testing import DevHostProcess
from shared.backends import get_backend
from shared.backends.base import MANAGED_TAG, ModelVersion
from shared.gateway.openai_api import parse_scoring_output
from shared.ledger import Ledger, ModelRecord
from tests.integration.test_gateway_handlers import SAMPLE_SCORE

pytestmark = pytest.mark.slow  # starts a model server process (torch), ~10-30 s on two cores

MODEL = "local-bot"
ENDPOINT = f"at-{MODEL}"


@pytest.fixture
def endpoint(app_env, ledger: Ledger, tmp_path: Path) -> Iterator[str]:
    from localml.tinymodel import export_untrained

    backend = get_backend()
    folder = export_untrained(app_env["LOCAL_STATE_DIR"], tmp_path / "untrained")
    backend.begin_endpoint(ENDPOINT, {MANAGED_TAG: "true"})
    backend.begin_deployment(ENDPOINT, "v1", ModelVersion("autotune-untrained", "1", path=str(folder)), "cpu", 1)
    deadline = time.monotonic() + 180
    while backend.get_deployment(ENDPOINT, "v1").phase.value != "succeeded":
        assert time.monotonic() < deadline, "the local deployment did not come up"
        time.sleep(0.5)
    backend.set_traffic(ENDPOINT, {"v1": 100})
    ledger.create(
        ModelRecord(
            model=MODEL,
            state="live",
            desired_version="1",
            live_version="1",
            live_deployment="v1",
            endpoint_name=ENDPOINT,
        )
    )
    try:
        yield ENDPOINT
    finally:
        backend.begin_delete_endpoint(ENDPOINT)


def test_openai_client_through_the_devhost_to_a_real_local_endpoint(app_env, endpoint: str):
    with DevHostProcess(env=app_env) as host:
        client = openai.OpenAI(base_url=f"{host.url}/v1", api_key="test-key-2", max_retries=0, timeout=120)
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my package?"}]
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, max_tokens=8, temperature=0
        )
        completion = raw.parse()
        assert isinstance(completion.choices[0].message.content, str)
        assert completion.choices[0].finish_reason in ("stop", "length")
        assert raw.headers["x-autotune-deployment"] == "v1"  # the local router names who answered

        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, stream=True))
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")

        assert MODEL in {m.id for m in client.models.list()}

        native = httpx.post(
            f"{host.url}/api/models/{MODEL}/score",
            content=json.dumps(SAMPLE_SCORE),
            headers={"api-key": "test-key-1", "Content-Type": "application/json"},
            timeout=120,
        )
        assert native.status_code == 200, native.text
        assert isinstance(parse_scoring_output(native.json()), str)
