"""The real ``openai`` client against the gateway on the devhost (a real HTTP server in its own process).

The model's endpoint is a stub scoring server on loopback in this process (``gateway_devhost_app`` points the
devhost's targets at it), so tests can script its failures; the ledger is a real one on Azurite.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devhost.testing import DevHostProcess
from shared.ledger import ActivityRecord, Ledger, ModelRecord
from shared.settings import load_settings
from tests.fakes.scoring_stub import StubReply, StubScoringServer
from tests.integration.test_gateway_handlers import SAMPLE_SCORE
from tests.isolation import isolated_env

KEYS = ("client-key-old", "client-key-new")


class Stack:
    def __init__(self, host: DevHostProcess, stub: StubScoringServer, ledger: Ledger, target_file: Path):
        self.host, self.stub, self.ledger, self.target_file = host, stub, ledger, target_file

    def client(self, key: str = KEYS[0]) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.host.url}/v1", api_key=key, max_retries=0, timeout=30)

    def rotate_endpoint_key(self, key: str) -> None:
        self.stub.key = key
        self.target_file.write_text(json.dumps({"url": self.stub.url, "key": key}))

    def model(self, state: str = "live", **fields: str) -> str:
        """A fresh model per test (the devhost's target cache outlives a test)."""
        name = f"bot-{uuid.uuid4().hex[:8]}"
        record = ModelRecord(
            model=name,
            state=state,
            desired_version="2",
            live_version="2",
            live_deployment="v2",
            endpoint_name=f"at-{name}",
            last_deployed_at="2026-11-27T08:00:00.000Z",
        )
        for key, value in fields.items():
            setattr(record, key, value)
        self.ledger.create(record)
        return name


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("gateway-devhost")
    env = isolated_env(
        azurite,
        folder / "state",
        GATEWAY_API_KEYS=",".join(KEYS),
        GATEWAY_MAX_BODY_BYTES="20000",
        GATEWAY_READ_TIMEOUT_SECONDS="1",
        IDLE_SWEEP_SCHEDULE="0 0 0 1 1 *",  # keep the timers quiet during the tests
        RECONCILE_SCHEDULE="0 0 0 1 1 *",
        GATEWAY_STUB_TARGET_FILE=str(folder / "target.json"),
    )
    with StubScoringServer(key="endpoint-key-1", deployment="v2", answer="Bonjour from the stub.") as stub:
        target_file = Path(env["GATEWAY_STUB_TARGET_FILE"])
        target_file.write_text(json.dumps({"url": stub.url, "key": stub.key}))
        ledger = Ledger(load_settings(env))
        with DevHostProcess(env=env, app="tests.integration.gateway_devhost_app") as host:
            yield Stack(host, stub, ledger, target_file)


def test_chat_completion_with_the_openai_client(stack: Stack):
    model = stack.model()
    raw = stack.client().chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello in French."}],
        temperature=0.2,
        max_tokens=50,
    )
    completion = raw.parse()
    assert completion.model == model
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Bonjour from the stub."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.total_tokens > completion.usage.prompt_tokens
    assert raw.headers["x-autotune-deployment"] == "v2"
    assert float(raw.headers["x-autotune-overhead-ms"]) >= 0
    sent = stack.stub.requests[-1].json()["input_data"]
    assert sent["parameters"] == {"temperature": 0.2, "top_p": 1.0, "do_sample": True, "max_new_tokens": 50}


def test_streaming_with_the_openai_client(stack: Stack):
    model = stack.model()
    stream = stack.client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Bonjour from the stub."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_models_list_and_retrieve(stack: Stack):
    live = stack.model()
    asleep = stack.model(state="sleeping", endpoint_name="", slept_at="2026-11-27T10:00:00.000Z")
    client = stack.client()
    ids = {m.id for m in client.models.list()}
    assert {live, asleep} <= ids
    assert client.models.retrieve(live).id == live
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody-here")


def test_errors_arrive_as_the_clients_own_exceptions(stack: Stack):
    model = stack.model()
    with pytest.raises(openai.AuthenticationError):
        stack.client("wrong-key").chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as missing:
        stack.client().chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        stack.client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        )
    assert bad.value.param == "messages[1].role" and "messages[1]" in bad.value.message
    with pytest.raises(openai.BadRequestError) as many:
        stack.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "a"}], n=2)
    assert many.value.param == "n"
    with pytest.raises(openai.APIStatusError) as too_big:
        stack.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "x" * 30000}])
    assert too_big.value.status_code == 413


def test_key_rotation_both_gateway_keys_and_the_api_key_header(stack: Stack):
    model = stack.model()
    for key in KEYS:
        assert stack.client(key).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    url = f"{stack.host.url}/v1/chat/completions"
    assert httpx.post(url, json=body, headers={"api-key": KEYS[1]}).status_code == 200
    refused = httpx.post(url, json=body, headers={"api-key": "nope"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_upstream_failures_map_to_gateway_errors(stack: Stack):
    model = stack.model()
    client = stack.client()
    messages = [{"role": "user", "content": "x"}]
    stack.stub.script.append(StubReply(500, b'{"message": "model crashed"}'))
    with pytest.raises(openai.InternalServerError) as crashed:
        client.chat.completions.create(model=model, messages=messages)
    assert crashed.value.status_code == 502 and crashed.value.code == "upstream_error"
    stack.stub.script.append(StubReply(200, b"<html>proxy error</html>"))
    with pytest.raises(openai.InternalServerError) as garbage:
        client.chat.completions.create(model=model, messages=messages)
    assert garbage.value.status_code == 502 and garbage.value.code == "upstream_bad_response"
    stack.stub.script.append(StubReply(200, b'{"output": "late"}', delay=2.5))  # read timeout is 1 s
    with pytest.raises(openai.InternalServerError) as slow:
        client.chat.completions.create(model=model, messages=messages)
    assert slow.value.status_code == 504 and slow.value.code == "upstream_timeout"


def test_a_rotated_endpoint_key_is_refreshed(stack: Stack):
    model = stack.model()
    client = stack.client()
    messages = [{"role": "user", "content": "x"}]
    assert client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    stack.rotate_endpoint_key("endpoint-key-2")
    before = len(stack.stub.requests)
    answer = client.chat.completions.create(model=model, messages=messages)
    assert answer.choices[0].message.content == "Bonjour from the stub."
    auths = [r.headers["authorization"] for r in stack.stub.requests[before:]]
    assert auths == ["Bearer endpoint-key-1", "Bearer endpoint-key-2"]  # 401, then the refreshed key


def test_a_sleeping_model_answers_503_with_retry_after_and_wakes(stack: Stack):
    model = stack.model(state="sleeping", endpoint_name="", slept_at="2026-11-27T10:00:00.000Z", sleep_reason="idle")
    with pytest.raises(openai.APIStatusError) as waking:
        stack.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert waking.value.status_code == 503 and waking.value.code == "model_waking"
    assert int(waking.value.response.headers["retry-after"]) > 0
    record = stack.ledger.get(ModelRecord, "models", model)
    assert record.state == "deploying"
    deadline = time.monotonic() + 10  # the activity write happens in the background, off the request
    while stack.ledger.get(ActivityRecord, "activity", model) is None:
        assert time.monotonic() < deadline, "the wake request was not recorded as activity"
        time.sleep(0.1)


def test_native_scoring_passthrough(stack: Stack):
    model = stack.model()
    response = httpx.post(
        f"{stack.host.url}/api/models/{model}/score",
        content=json.dumps(SAMPLE_SCORE),
        headers={"Authorization": f"Bearer {KEYS[0]}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"output": "Bonjour from the stub."}
    assert response.headers["x-autotune-deployment"] == "v2"
    assert stack.stub.requests[-1].json() == SAMPLE_SCORE
