"""The gateway's HTTP functions as the Functions host calls them: real ``func.HttpRequest`` objects, a real
ledger on Azurite, and a real scoring server on loopback (the stub, registered as the model's target through
the targets module's resolver seam, because these tests need an endpoint that fails on purpose)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from functions import gateway as routes
from shared.backends.base import ScoringTarget
from shared.gateway import targets, upstream
from shared.gateway.service import get_gateway
from shared.ledger import ActivityRecord, ModelRecord
from shared.settings import reset_settings
from tests import factories
from tests.fakes.scoring_stub import StubReply, StubScoringServer

KEY = "test-key-1"
MESSAGES = [{"role": "user", "content": "I am going to Paris, what should I see?"}]
# The notebook's sample_score.json: a list of conversations, its sampling parameters, and empty params.
SAMPLE_SCORE = {
    "input_data": {
        "input_string": [MESSAGES],
        "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200},
    },
    "params": {},
}


class Platform:
    """What the ML platform would say about endpoints: URI and current key (rotates in one test)."""

    def __init__(self, stub: StubScoringServer):
        self.stub = stub
        self.key = stub.key
        self.lookups = 0

    def __call__(self, record: ModelRecord) -> ScoringTarget:
        self.lookups += 1
        assert record.endpoint_name == f"at-{record.model}"
        return ScoringTarget(uri=self.stub.url, headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture
def stub() -> Iterator[StubScoringServer]:
    with StubScoringServer(key="endpoint-key-1", deployment="v3", answer="See the Louvre.") as server:
        yield server


@pytest.fixture
def platform(app_env, stub: StubScoringServer) -> Iterator[Platform]:
    resolver = Platform(stub)
    targets.set_resolver(resolver)
    yield resolver
    targets.set_resolver(None)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test, like one Functions worker: the pooled client lives on it."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.run_until_complete(upstream.aclose_client())
    event_loop.close()


# A live model of this file: deployed at a fixed time, scored at an address the tests' targets replace.
live_model = functools.partial(
    factories.live_model, deployed_at="2026-11-27T08:00:00.000Z", scoring_uri="http://ignored/score"
)


class Answer:
    def __init__(self, response: func.HttpResponse):
        self.status = response.status_code
        self.headers = dict(response.headers)
        self.mimetype = response.mimetype
        self.raw = response.get_body()

    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json()
        assert set(body["error"]) == {"message", "type", "code", "param"}
        return body["error"]


def call(
    loop: asyncio.AbstractEventLoop,
    handler: Any,
    url: str,
    body: Any = None,
    *,
    method: str = "POST",
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    **route_params: str,
) -> Answer:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    req = func.HttpRequest(method=method, url=url, body=raw, headers=sent, route_params=route_params)
    response = loop.run_until_complete(handler.build().get_user_function()(req))
    answer = Answer(response)
    assert float(answer.headers["x-autotune-overhead-ms"]) >= 0
    return answer


def chat(loop, body: dict[str, Any] | None = None, **kwargs: Any) -> Answer:
    payload = {"model": "support-bot", "messages": MESSAGES, **(body or {})}
    return call(loop, routes.chat_completions, "http://localhost/v1/chat/completions", payload, **kwargs)


def use_settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    reset_settings()


# -- the happy paths ---------------------------------------------------------------------------


def test_chat_completion_is_translated_forwarded_and_answered_in_openai_shape(loop, ledger, stub, platform):
    live_model(ledger)
    answer = chat(loop, {"temperature": 0.6, "top_p": 0.9, "max_tokens": 200})
    assert answer.status == 200, answer.raw
    body = answer.json()
    assert body["object"] == "chat.completion" and body["model"] == "support-bot"
    assert body["choices"][0]["message"]["content"] == "See the Louvre."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0
    assert answer.headers["x-autotune-deployment"] == "v3"
    (request,) = stub.requests
    assert request.headers["authorization"] == "Bearer endpoint-key-1"  # the endpoint's key, not the caller's
    assert request.json() == {
        "input_data": {
            "input_string": MESSAGES,
            "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200},
        }
    }


def test_streaming_answers_server_sent_events_ending_with_done(loop, ledger, stub, platform):
    live_model(ledger)
    answer = chat(loop, {"stream": True})
    assert answer.status == 200 and answer.mimetype == "text/event-stream"
    events = answer.raw.decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "See the Louvre."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stop_sequences_truncate_the_answer(loop, ledger, stub, platform):
    live_model(ledger)
    answer = chat(loop, {"stop": [" Louvre"]})
    assert answer.json()["choices"][0]["message"]["content"] == "See the"


def test_activity_is_recorded_once_per_minute(loop, ledger, stub, platform):
    live_model(ledger)
    for _ in range(3):
        assert chat(loop).status == 200
    get_gateway().activity.flush()
    activity = ledger.get(ActivityRecord, "activity", "support-bot")
    assert activity is not None and activity.last_request_at
    first = activity.etag
    chat(loop)
    get_gateway().activity.flush()
    assert ledger.get(ActivityRecord, "activity", "support-bot").etag == first  # debounced: no second write


def test_the_hot_path_serves_from_the_cache_without_reading_storage(loop, ledger, stub, platform):
    record = live_model(ledger)
    assert chat(loop).status == 200
    ledger.delete(record)  # a storage read now would answer 404
    assert chat(loop).status == 200
    assert platform.lookups == 1


def test_native_scoring_passes_the_notebooks_sample_score_json_through(loop, ledger, stub, platform):
    live_model(ledger)
    raw = json.dumps(SAMPLE_SCORE, indent=4).encode()
    url = "http://localhost/api/models/support-bot/score"
    answer = call(loop, routes.score, url, raw, model="support-bot")
    assert answer.status == 200
    assert answer.json() == {"output": "See the Louvre."}
    assert answer.headers["x-autotune-deployment"] == "v3"
    assert stub.requests[0].body == raw  # byte for byte
    bad = call(loop, routes.score, url, {"messages": MESSAGES}, model="support-bot")
    assert bad.status == 400 and bad.error["param"] == "input_data"


def test_models_lists_live_and_sleeping_models(loop, ledger, platform):
    live_model(ledger)
    live_model(ledger, "night-bot", state="sleeping", endpoint_name="", slept_at="2026-11-27T10:00:00.000Z")
    ledger.create(ModelRecord(model="new-bot", state="new"))
    ledger.create(ModelRecord(model="first-bot", state="deploying", desired_version="1"))
    answer = call(loop, routes.list_models, "http://localhost/v1/models", method="GET")
    assert answer.status == 200
    body = answer.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["state"]) for m in body["data"]] == [
        ("night-bot", "model", "sleeping"),
        ("support-bot", "model", "live"),
    ]
    one = call(loop, routes.get_model, "http://localhost/v1/models/night-bot", method="GET", model="night-bot")
    assert one.json()["id"] == "night-bot"
    missing = call(loop, routes.get_model, "http://localhost/v1/models/new-bot", method="GET", model="new-bot")
    assert missing.status == 404


# -- auth and limits ---------------------------------------------------------------------------


def test_auth_accepts_both_keys_and_both_headers_and_refuses_the_rest(loop, ledger, stub, platform):
    live_model(ledger)
    assert chat(loop, key="test-key-1").status == 200
    assert chat(loop, key="test-key-2").status == 200  # rotation: the second key works too
    assert chat(loop, key=None, headers={"api-key": "test-key-2"}).status == 200
    for key, code in ((None, "missing_api_key"), ("endpoint-key-1", "invalid_api_key")):
        refused = chat(loop, key=key)
        assert refused.status == 401 and refused.error["code"] == code
        assert "test-key" not in refused.raw.decode()
    models = call(loop, routes.list_models, "http://localhost/v1/models", method="GET", key="nope")
    assert models.status == 401
    assert len(stub.requests) == 3


def test_limits_are_413_and_400_from_settings(loop, ledger, stub, platform, monkeypatch):
    use_settings(monkeypatch, GATEWAY_MAX_BODY_BYTES="2000", GATEWAY_MAX_MESSAGES="2", GATEWAY_MAX_TOKENS="100")
    live_model(ledger)
    too_big = chat(loop, {"messages": [{"role": "user", "content": "x" * 3000}]})
    assert too_big.status == 413 and "GATEWAY_MAX_BODY_BYTES" in too_big.error["message"]
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert chat(loop, {"messages": turns}).error["param"] == "messages"
    assert chat(loop, {"max_tokens": 101}).error["param"] == "max_tokens"
    assert chat(loop, {"n": 2}).status == 400
    invalid = call(loop, routes.chat_completions, "http://localhost/v1/chat/completions", b"{not json")
    assert invalid.status == 400 and "not valid JSON" in invalid.error["message"]
    order = chat(loop, {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert order.status == 400 and order.error["param"] == "messages[1].role"
    assert stub.requests == []


# -- model states ------------------------------------------------------------------------------


def test_unknown_models_are_404(loop, ledger, platform):
    for name in ("nobody", "Not_A_Valid_Name"):
        answer = chat(loop, {"model": name})
        assert answer.status == 404
        assert answer.error["code"] == "model_not_found" and answer.error["param"] == "model"


def test_a_sleeping_model_answers_503_and_is_woken(loop, ledger, stub, platform):
    live_model(
        ledger,
        state="sleeping",
        endpoint_name="",
        live_deployment="",
        slept_at="2026-11-27T10:00:00.000Z",
        sleep_reason="idle 61 min",
    )
    answer = chat(loop)
    assert answer.status == 503
    assert answer.error["code"] == "model_waking"
    assert int(answer.headers["Retry-After"]) > 0
    record = ledger.get(ModelRecord, "models", "support-bot")
    assert record.state == "deploying" and record.sleep_reason.startswith("woken by gateway request")
    again = chat(loop)  # while it wakes up
    assert again.status == 503 and again.error["code"] == "model_waking"
    get_gateway().activity.flush()
    assert ledger.get(ActivityRecord, "activity", "support-bot") is not None  # a wake request counts as activity
    assert stub.requests == []


def test_auto_wake_off_leaves_a_sleeping_model_asleep(loop, ledger, platform, monkeypatch):
    use_settings(monkeypatch, AUTO_WAKE="false")
    live_model(ledger, state="sleeping", endpoint_name="", slept_at="2026-11-27T10:00:00.000Z")
    answer = chat(loop)
    assert answer.status == 503 and answer.error["code"] == "model_sleeping"
    assert "/api/models/support-bot/wake" in answer.error["message"]
    assert ledger.get(ModelRecord, "models", "support-bot").state == "sleeping"


def test_a_first_deployment_in_progress_is_503_not_ready(loop, ledger, platform):
    ledger.create(ModelRecord(model="support-bot", state="deploying", desired_version="1"))
    answer = chat(loop)
    assert answer.status == 503 and answer.error["code"] == "model_not_ready"
    assert "Retry-After" in answer.headers


@pytest.mark.parametrize(
    "dying",
    [
        StubReply(404, b'{"message": "endpoint not found"}'),  # the endpoint is gone
        StubReply(502, b'{"error": "deployment v1 did not answer"}'),  # its router still up, the model server gone
    ],
    ids=["404", "502"],
)
def test_an_endpoint_gone_to_sleep_behind_the_cache_wakes_the_model(loop, ledger, stub, platform, dying):
    live_model(ledger)
    assert chat(loop).status == 200

    def sleep(record: ModelRecord) -> ModelRecord:
        record.state, record.endpoint_name, record.slept_at, record.sleep_reason = "sleeping", "", "2026-11-27", "idle"
        return record

    ledger.mutate(ModelRecord, "models", "support-bot", sleep)  # the sweeper deleted the endpoint
    stub.script.append(dying)
    answer = chat(loop)
    assert answer.status == 503 and answer.error["code"] == "model_waking"
    assert ledger.get(ModelRecord, "models", "support-bot").state == "deploying"


# -- upstream failures -------------------------------------------------------------------------


def test_upstream_500_is_502_without_retry(loop, ledger, stub, platform):
    live_model(ledger)
    stub.script.append(StubReply(500, b'{"message": "CUDA out of memory"}'))
    answer = chat(loop)
    assert answer.status == 502 and answer.error["code"] == "upstream_error"
    assert "CUDA out of memory" in answer.error["message"]
    assert len(stub.requests) == 1


def test_upstream_503_is_retried_once(loop, ledger, stub, platform):
    live_model(ledger)
    stub.script.append(StubReply(503, b"busy"))
    assert chat(loop).status == 200
    assert len(stub.requests) == 2
    stub.script.extend([StubReply(503, b"busy"), StubReply(503, b"still busy")])
    answer = chat(loop)
    assert answer.status == 503 and answer.error["code"] == "upstream_unavailable"
    assert len(stub.requests) == 4


def test_upstream_4xx_is_a_400_without_retry(loop, ledger, stub, platform):
    live_model(ledger)
    stub.script.append(StubReply(400, b'{"message": "input too long"}'))
    answer = chat(loop)
    assert answer.status == 400 and answer.error["code"] == "upstream_rejected"
    assert len(stub.requests) == 1


def test_upstream_timeout_is_504(loop, ledger, stub, platform, monkeypatch):
    use_settings(monkeypatch, GATEWAY_READ_TIMEOUT_SECONDS="0.3")
    live_model(ledger)
    stub.script.append(StubReply(200, b'{"output": "late"}', delay=1.5))
    answer = chat(loop)
    assert answer.status == 504 and answer.error["code"] == "upstream_timeout"
    assert float(answer.headers["x-autotune-overhead-ms"]) < 250  # the wait on the endpoint is not overhead
    assert len(stub.requests) == 1  # a read timeout is not retried


@pytest.mark.parametrize("garbage", [b"<html>Bad Gateway</html>", b'{"unexpected": true}', b"", b"\xff\xfe"])
def test_an_unreadable_answer_is_502(loop, ledger, stub, platform, garbage):
    live_model(ledger)
    stub.script.append(StubReply(200, garbage))
    answer = chat(loop)
    assert answer.status == 502 and answer.error["code"] == "upstream_bad_response"


def test_a_dropped_connection_is_retried_once(loop, ledger, stub, platform):
    live_model(ledger)
    stub.script.append(StubReply(drop=True))
    assert chat(loop).status == 200
    assert len(stub.requests) == 2


def test_an_unreachable_endpoint_is_502(loop, ledger, stub, platform):
    live_model(ledger)
    stub.stop()
    answer = chat(loop)
    assert answer.status == 502 and answer.error["code"] == "upstream_unavailable"


def test_a_rotated_endpoint_key_is_refreshed_once(loop, ledger, stub, platform):
    live_model(ledger)
    assert chat(loop).status == 200
    stub.key = platform.key = "endpoint-key-2"  # the key was regenerated on the platform
    answer = chat(loop)
    assert answer.status == 200
    assert [r.headers["authorization"] for r in stub.requests[1:]] == [
        "Bearer endpoint-key-1",
        "Bearer endpoint-key-2",
    ]
    assert platform.lookups == 2
    stub.key = "something-else"  # a key the platform does not know either: no endless refresh
    denied = chat(loop)
    assert denied.status == 502 and denied.error["code"] == "upstream_auth_failed"


def test_an_unexpected_failure_is_a_clean_500(loop, ledger, platform, caplog):
    def broken(record: ModelRecord) -> ScoringTarget:
        raise RuntimeError("boom")

    targets.set_resolver(broken)
    live_model(ledger)
    answer = chat(loop)
    assert answer.status == 500 and answer.error["code"] == "internal_error"
    assert "boom" not in answer.raw.decode()
