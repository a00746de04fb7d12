"""devhost against a small test app (tests/fixtures/devhost_app) run as a real subprocess on a free port.

The app records each invocation as a JSON line in the file named by DEVHOST_TEST_RECORD; the tests read it.
One host serves the HTTP, Event Grid and admin tests of this module (each test uses its own ids); the blob,
timer and shutdown tests in test_devhost_triggers.py start their own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.testing import DevHostProcess
from tests.conftest import ROOT, SHARED_DIR
from tests.isolation import isolated_env

FIXTURE_APP = ROOT / "tests" / "fixtures" / "devhost_app"
EVENTS = SHARED_DIR / "contracts" / "events"


def read_records(path: Path, function: str | None = None) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line the app is still writing is read on the next poll
    rows = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return [row for row in rows if function is None or row["fn"] == function]


def wait_for_records(path: Path, function: str, count: int = 1, timeout: float = 20, **match: object) -> list[dict]:
    """Poll the record file until ``count`` invocations of ``function`` whose fields equal ``match`` appear."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in read_records(path, function) if all(r.get(k) == v for k, v in match.items())]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def fixture_env(azurite: str, tmp_path: Path) -> dict[str, str]:
    """The app_env shape (own container, tables, state dir) plus the record file and one overridden setting."""
    return isolated_env(
        azurite,
        tmp_path / "state",
        DEVHOST_TEST_RECORD=str(tmp_path / "records.jsonl"),
        FIXTURE_OVERRIDDEN="from the environment",
    )


@pytest.fixture(scope="module")
def host(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    env = fixture_env(azurite, tmp_path_factory.mktemp("devhost"))
    with DevHostProcess(FIXTURE_APP, env=env, args=["--blob-poll-seconds", "0.3"]) as running:
        running.record_path = Path(env["DEVHOST_TEST_RECORD"])  # type: ignore[attr-defined]
        yield running


@pytest.fixture(scope="module")
def client(host: DevHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=30) as http:
        yield http


def eventgrid(client: httpx.Client, function: str, body: object, kind: str = "Notification") -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(
        "/runtime/webhooks/eventgrid",
        params={"functionName": function},
        content=content,
        headers={"aeg-event-type": kind, "Content-Type": "application/json"},
    )


# ---- HTTP ----------------------------------------------------------------------------------------------


def test_http_route_params_query_body_and_settings(host: DevHostProcess, client: httpx.Client) -> None:
    item = f"item-{uuid.uuid4().hex[:6]}"
    response = client.post(
        f"/api/items/{item}/parts/42", params={"q": "x y", "n": "1"}, content=b"payload", headers={"X-Test-Header": "h"}
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-echo"] == "1"
    body = response.json()
    assert body["method"] == "POST"
    assert body["route"] == {"item_id": item, "part": "42"}
    assert body["params"] == {"q": "x y", "n": "1"}
    assert body["header"] == "h"
    assert body["body"] == "payload"
    assert body["url"].startswith(f"{host.url}/api/items/{item}/parts/42?")
    assert body["greeting"] == "hello from local.settings"  # from the app's settings file
    assert body["overridden"] == "from the environment"  # the environment wins, as with func start
    assert body["host_url"] == host.url  # AUTOTUNE_HOST_URL names the real port
    assert len(wait_for_records(host.record_path, "item_part", route={"item_id": item, "part": "42"})) == 1


def test_http_route_matching_like_azure(client: httpx.Client) -> None:
    assert client.get("/API/Items/abc/parts/7").status_code == 201  # literals match case-insensitively
    assert client.get("/api/items/abc/parts/seven").status_code == 404  # {part:int} constraint
    assert client.get("/api/items/special/parts/3").text == "special 3"  # the literal template wins
    assert client.put("/api/items/abc/parts/7").status_code == 404  # method not allowed: 404 as in Azure
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/api/async").text == "async ok"  # async def runs on the event loop


def test_headers_up_to_the_real_hosts_limit_pass_and_are_never_echoed(host: DevHostProcess, client: httpx.Client):
    """Kestrel (the Functions host) takes up to 32 KB of headers in all; a header over it is a 431 whose body
    says nothing of the header (it may be a credential)."""
    long_value = "h" * 10_000 + "-end"
    response = client.get("/api/items/long/parts/1", headers={"X-Test-Header": long_value, "Authorization": "x" * 9000})
    assert response.status_code == 201 and response.json()["header"] == long_value
    secret = "s3cr3t" * 7_000  # 42 KB: over the limit
    refused = client.get("/api/items/long/parts/2", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 431
    assert "s3cr3t" not in refused.text and "Bearer" not in refused.text
    many = {f"x-extra-{index}": "v" * 300 for index in range(120)}  # 36 KB over many headers
    assert client.get("/api/items/long/parts/3", headers=many).status_code == 431
    assert "s3cr3t" not in host.log()
    assert client.get("/api/async").status_code == 200


def test_a_chunked_body_without_content_length_reaches_the_function_empty(host: DevHostProcess, client: httpx.Client):
    """The Functions host passes the body only when Content-Length says there is one; the devhost does the same."""

    def chunks():
        yield b"first chunk, "
        yield b"second chunk"

    item = f"chunked-{uuid.uuid4().hex[:6]}"
    response = client.post(f"/api/items/{item}/parts/1", content=chunks())
    assert response.status_code == 201
    assert response.json()["body"] == ""
    sized = client.post(f"/api/items/{item}/parts/2", content=b"with a length")
    assert sized.json()["body"] == "with a length"


def test_http_failure_is_500_and_host_keeps_serving(client: httpx.Client) -> None:
    assert client.get("/api/fail").status_code == 500
    assert client.get("/api/async").status_code == 200


# ---- Event Grid ----------------------------------------------------------------------------------------


def test_eventgrid_subscription_validation_handshake(client: httpx.Client) -> None:
    events = json.loads((EVENTS / "subscription-validation.eventgrid.json").read_text())
    response = eventgrid(client, "on_event", events, kind="SubscriptionValidation")
    assert response.status_code == 200
    assert response.json() == {"validationResponse": events[0]["data"]["validationCode"]}


def test_eventgrid_event_schema_decoded_like_the_worker(host: DevHostProcess, client: httpx.Client) -> None:
    events = json.loads((EVENTS / "aml-run-completed.pipeline.eventgrid.json").read_text())
    events[0]["id"] = event_id = str(uuid.uuid4())
    assert eventgrid(client, "on_event", events).status_code == 202
    (row,) = wait_for_records(host.record_path, "on_event", id=event_id)
    assert row["kind"] == "EventGridEvent"
    assert row["type"] == "Microsoft.MachineLearningServices.RunCompleted"
    assert row["subject"] == events[0]["subject"]
    assert row["topic"] == events[0]["topic"]
    assert row["data"]["runId"] == "khaki_ear_4n6mbwp2qz"
    assert row["time"].startswith("2026-11-20 10:42:17.123456")


def test_eventgrid_cloudevent_schema(host: DevHostProcess, client: httpx.Client) -> None:
    events = json.loads((EVENTS / "aml-run-completed.pipeline.cloudevent.json").read_text())
    events[0]["id"] = event_id = str(uuid.uuid4())
    assert eventgrid(client, "on_event", events).status_code == 202
    (row,) = wait_for_records(host.record_path, "on_event", id=event_id)
    assert row["kind"] == "CloudEvent"
    assert row["type"] == "Microsoft.MachineLearningServices.RunCompleted"
    assert row["source"] == events[0]["source"]
    assert row["data"]["runId"] == "khaki_ear_4n6mbwp2qz"


def test_eventgrid_one_invocation_per_event(host: DevHostProcess, client: httpx.Client) -> None:
    step = json.loads((EVENTS / "aml-run-completed.step.eventgrid.json").read_text())[0]
    failed = json.loads((EVENTS / "aml-run-status-changed.failed.eventgrid.json").read_text())[0]
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    step["id"], failed["id"] = ids
    assert eventgrid(client, "on_event", [step, failed]).status_code == 202
    for event_id in ids:
        assert len(wait_for_records(host.record_path, "on_event", id=event_id)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "non-empty JSON array"),
        (b"[1, 2]", "event [0] is not a JSON object"),
        (b'[{"id": "x"}]', "event [0] lacks eventType, subject"),
        (b'"text"', "JSON array"),
        (b'[{"id": "x", "subject": "s", "eventType": "T", "eventTime": "yesterday"}]', "cannot decode the events"),
    ],
)
def test_eventgrid_malformed_body_is_400_and_host_keeps_running(
    client: httpx.Client, body: bytes, message: str
) -> None:
    response = eventgrid(client, "on_event", body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.get("/admin/host/status").json()["state"] == "Running"
    assert client.get("/api/async").status_code == 200


def test_eventgrid_function_failure_is_500_so_the_sender_retries(client: httpx.Client) -> None:
    event = {"id": str(uuid.uuid4()), "subject": "s", "eventType": "Test.Fail", "data": {"fail": True}}
    event.update(eventTime="2026-11-20T10:00:00Z", dataVersion="1")
    assert eventgrid(client, "on_event", [event]).status_code == 500
    assert client.get("/api/async").status_code == 200


def test_eventgrid_unknown_function_is_404(client: httpx.Client) -> None:
    events = json.loads((EVENTS / "aml-run-completed.pipeline.eventgrid.json").read_text())
    assert eventgrid(client, "no_such_function", events).status_code == 404
    assert eventgrid(client, "item_part", events).status_code == 404  # not an Event Grid function


# ---- admin ---------------------------------------------------------------------------------------------


def test_admin_host_status(client: httpx.Client) -> None:
    status = client.get("/admin/host/status").json()
    assert status["state"] == "Running"
    expected = {"item_part", "special_part", "async_route", "slow", "fail", "spawn", "on_event", "on_blob", "on_stream"}
    assert expected | {"tick", "yearly"} == set(status["functions"])
    # An annotation that only exists under TYPE_CHECKING does not resolve: the worker cannot load it either.
    assert "cannot load the unloadable function" in status["errors"]["unloadable"]


def test_admin_invoke_timer_and_eventgrid(host: DevHostProcess, client: httpx.Client) -> None:
    before = len(read_records(host.record_path, "yearly"))
    assert before >= 1  # run_on_startup fired once at start
    assert client.post("/admin/functions/yearly", json={"input": ""}).status_code == 202
    rows = wait_for_records(host.record_path, "yearly", count=before + 1)
    assert len(rows) == before + 1
    assert rows[-1]["past_due"] is False
    assert rows[-1]["name"] == "yearly"  # the context parameter

    event = {"id": str(uuid.uuid4()), "subject": "manual", "eventType": "Test.Manual", "data": {"k": 1}}
    response = client.post("/admin/functions/ON_EVENT", json={"input": json.dumps(event)})  # names: any case
    assert response.status_code == 202
    (row,) = wait_for_records(host.record_path, "on_event", id=event["id"])
    assert row["data"] == {"k": 1}


def test_admin_invoke_errors(client: httpx.Client) -> None:
    assert client.post("/admin/functions/nope", json={"input": ""}).status_code == 404
    assert client.post("/admin/functions/item_part", json={"input": ""}).status_code == 400  # HTTP: use its route
    assert client.post("/admin/functions/on_event", json={"input": "not an event"}).status_code == 400
    assert client.post("/admin/functions/yearly", content=b"[1]").status_code == 400


def test_a_body_nested_too_deeply_is_400_on_the_webhooks_and_admin(client: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # the stdlib parser raises RecursionError, not ValueError
    for response in (
        eventgrid(client, "on_event", deep),
        client.post("/runtime/webhooks/blobs", params={"functionName": "on_blob"}, content=deep),
        client.post("/admin/functions/on_event", content=deep),
    ):
        assert response.status_code == 400, response.text[:200]
        assert "nested too deeply" in response.json()["error"]
    assert client.get("/api/async").status_code == 200
