"""Gateway faults (issue 16): an upstream storm, oversized declared bodies, an endpoint that trickles its answer
forever, bodies that are not JSON however they fail, and API keys of any length.

The same parts as ``test_gateway_handlers.py``: the real trigger functions, a real ledger on Azurite and the stub
scoring server on loopback, registered as the model's target through the targets module's resolver seam.
"""

from __future__ import annotations

import asyncio
import json

import azure.functions as func
import pytest

from functions import gateway as routes
from functions import ingest as ingest_routes
from tests.fakes.scoring_stub import StubReply
from tests.integration import test_gateway_handlers as handlers
from tests.integration.test_gateway_handlers import KEY, MESSAGES, Answer, call, chat, live_model, use_settings

stub, platform, loop = handlers.stub, handlers.platform, handlers.loop  # fixtures
CHAT_URL = "http://localhost/v1/chat/completions"
# 100,000 levels of nesting: the stdlib parser gives up with RecursionError, not ValueError.
DEEP = b"[" * 100_000 + b"]" * 100_000


def test_an_upstream_answering_503_costs_a_handful_of_route_resolutions(loop, ledger, stub, platform):
    """500 requests at once against an endpoint that only answers 503: each used to force its own re-resolve
    (ledger read + ARM GET + listKeys on Azure); one re-resolve per model is in flight, and its answer is
    reused for a few seconds."""
    live_model(ledger)
    stub.script.extend(StubReply(503, b"overloaded") for _ in range(1000))  # every attempt, retries included
    handler = routes.chat_completions.build().get_user_function()
    body = json.dumps({"model": "support-bot", "messages": MESSAGES}).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def storm() -> list[func.HttpResponse]:
        requests = [func.HttpRequest(method="POST", url=CHAT_URL, body=body, headers=headers) for _ in range(500)]
        return await asyncio.gather(*(handler(request) for request in requests))

    answers = [Answer(response) for response in loop.run_until_complete(storm())]
    assert {answer.status for answer in answers} == {503}
    assert {answer.error["code"] for answer in answers} == {"upstream_unavailable"}
    assert len(stub.requests) >= 500  # every request did reach the endpoint
    assert platform.lookups <= 5, f"{platform.lookups} route resolutions for 500 requests"


def test_a_declared_body_over_the_limit_is_413_before_the_body_is_read(loop, ledger, stub, platform, monkeypatch):
    use_settings(monkeypatch, GATEWAY_MAX_BODY_BYTES="2000")
    live_model(ledger)
    # The declared length decides: the (short, not even JSON) body is never looked at.
    answer = call(loop, routes.chat_completions, CHAT_URL, b"{not json", headers={"Content-Length": "5000000"})
    assert answer.status == 413 and "5000000" in answer.error["message"]
    assert "GATEWAY_MAX_BODY_BYTES" in answer.error["message"]
    assert stub.requests == []


def test_an_endpoint_trickling_its_answer_is_cut_off_at_the_total_budget(loop, ledger, stub, platform, monkeypatch):
    """Each byte comes well within the read timeout, so only a bound on the whole call stops it."""
    use_settings(monkeypatch, GATEWAY_READ_TIMEOUT_SECONDS="1", GATEWAY_CONNECT_TIMEOUT_SECONDS="1")
    live_model(ledger)
    stub.script.append(StubReply(200, json.dumps({"output": "x" * 40}).encode(), trickle=0.2))  # ~10 s in all
    answer = chat(loop)
    assert answer.status == 504 and answer.error["code"] == "upstream_timeout"
    assert len(stub.requests) == 1


@pytest.mark.parametrize("body", [DEEP, b"{not json", b"\xff\xfe{", b'{"model": "support-bot", "messages": [' * 3000])
def test_a_body_that_is_not_json_is_a_400_on_every_gateway_route(loop, ledger, stub, platform, body):
    live_model(ledger)
    score_url = "http://localhost/api/models/support-bot/score"
    for answer in (
        call(loop, routes.chat_completions, CHAT_URL, body),
        call(loop, routes.score, score_url, body, model="support-bot"),
    ):
        assert answer.status == 400, answer.raw[:300]
        assert answer.error["code"] == "invalid_request" and "JSON" in answer.error["message"]
    assert stub.requests == []


def test_an_import_request_that_is_not_json_is_a_400(ledger):
    for body in (DEEP, b"{not json"):
        request = func.HttpRequest(
            method="POST", url="/api/models/bot/imports", body=body, route_params={"model": "bot"}
        )
        response = ingest_routes.model_imports(request)
        assert response.status_code == 400
        error = json.loads(response.get_body())["error"]
        assert error["code"] == "invalid_request" and "JSON" in error["message"]


@pytest.mark.parametrize("length", [1, 40, 4_000, 10_000, 100_000])
def test_a_bogus_key_of_any_length_is_401_and_never_echoed(loop, ledger, stub, platform, length):
    live_model(ledger)
    bogus = ("k" * length)[:length]
    for headers in ({"Authorization": f"Bearer {bogus}"}, {"api-key": bogus}):
        answer = call(loop, routes.chat_completions, CHAT_URL, {"model": "support-bot"}, key=None, headers=headers)
        assert answer.status == 401 and answer.error["code"] == "invalid_api_key"
        assert bogus not in answer.raw.decode() or length == 1
    assert stub.requests == []
