"""The gateway with the real Azure ML backend finding its targets: scoring URI and key from the (faked) ARM REST
API, the endpoint's data plane a stub on loopback. A key regenerated on the platform is picked up after one 401."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import azure.functions as func
import pytest

from functions import gateway as routes
from shared.backends.base import MANAGED_TAG
from shared.gateway import targets, upstream
from shared.ledger import Ledger, ModelRecord
from tests.fakes.aml_rest import FakeAzureML
from tests.fakes.scoring_stub import StubScoringServer
from tests.integration.test_azureml_backend import make_backend

ENDPOINT = "at-support-bot"


@pytest.fixture
def world(app_env) -> Iterator[tuple[FakeAzureML, StubScoringServer]]:
    fake = FakeAzureML()
    fake.seed_notebook_world()
    backend = make_backend(fake)
    backend.begin_endpoint(ENDPOINT, {MANAGED_TAG: "true"})
    fake.settle()
    with StubScoringServer(key=fake.keys[ENDPOINT]["primaryKey"], deployment="v1", answer="From Azure ML.") as stub:
        # The managed endpoint's data plane is the stub: same contract, on loopback.
        fake.endpoints[ENDPOINT]["properties"]["scoringUri"] = stub.url
        # What targets.default_resolver does, with this backend instance (its REST calls go to the fake).
        targets.set_resolver(lambda record: backend.scoring_target(record.endpoint_name))
        yield fake, stub
        targets.set_resolver(None)


def chat(loop: asyncio.AbstractEventLoop) -> func.HttpResponse:
    body = {"model": "support-bot", "messages": [{"role": "user", "content": "hello"}]}
    req = func.HttpRequest(
        method="POST",
        url="http://localhost/v1/chat/completions",
        body=json.dumps(body).encode(),
        headers={"Authorization": "Bearer test-key-1"},
    )
    return loop.run_until_complete(routes.chat_completions.build().get_user_function()(req))


def test_scoring_target_and_key_come_from_the_platform_and_a_regenerated_key_is_refreshed(world, ledger: Ledger):
    fake, stub = world
    ledger.create(
        ModelRecord(model="support-bot", state="live", live_version="1", live_deployment="v1", endpoint_name=ENDPOINT)
    )
    loop = asyncio.new_event_loop()
    try:
        first = chat(loop)
        assert first.status_code == 200, first.get_body()
        assert json.loads(first.get_body())["choices"][0]["message"]["content"] == "From Azure ML."
        assert len(fake.find("POST", "/listKeys")) == 1
        assert chat(loop).status_code == 200  # served from the cache: no second key lookup
        assert len(fake.find("POST", "/listKeys")) == 1

        fake.keys[ENDPOINT] = {"primaryKey": "regenerated-1", "secondaryKey": "regenerated-2"}
        stub.key = "regenerated-1"
        refreshed = chat(loop)
        assert refreshed.status_code == 200
        assert len(fake.find("POST", "/listKeys")) == 2
        old_key = stub.requests[0].headers["authorization"]
        assert [r.headers["authorization"] for r in stub.requests[-2:]] == [old_key, "Bearer regenerated-1"]
        assert "regenerated-1" not in refreshed.get_body().decode()
    finally:
        loop.run_until_complete(upstream.aclose_client())
        loop.close()
