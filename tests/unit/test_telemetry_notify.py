"""Lifecycle notifications against a real loopback HTTP server acting as the Event Grid topic.

The real azure-eventgrid client does the publishing (key auth over http://127.0.0.1), so the wire shape
asserted here is what a real topic receives; failures of every kind must come back as False, never raise.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared import notify
from shared.settings import load_settings

TOPIC_KEY = "topic-key-not-for-logs-123"


class _Topic:
    """A tiny Event Grid topic: records each POST to /api/events and answers with ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        topic = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                topic.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(topic.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        return [event for request in self.requests for event in json.loads(request["body"])]


@pytest.fixture
def topic() -> Iterator[_Topic]:
    server = _Topic()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _settings(endpoint: str, key: str = TOPIC_KEY):
    return load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "EVENTS_TOPIC_ENDPOINT": endpoint,
            "EVENTS_TOPIC_KEY": key,
        }
    )


def test_publish_sends_one_event_grid_event_with_key_auth(topic: _Topic, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = {"run_id": "support-bot-1a2b", "model": "support-bot", "job_name": "job-9", "version": "3"}

    assert notify.publish(_settings(topic.endpoint), notify.RUN_SUCCEEDED, "runs/support-bot-1a2b", data) is True

    assert len(topic.requests) == 1
    request = topic.requests[0]
    assert request["path"].split("?")[0] == "/api/events"
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["aeg-sas-key"] == TOPIC_KEY
    assert headers["content-type"].startswith("application/json")
    [event] = topic.events()
    assert event["eventType"] == "Autotune.RunSucceeded"
    assert event["subject"] == "runs/support-bot-1a2b"
    assert event["dataVersion"] == "1"
    assert event["data"] == data
    assert event["id"] and event["eventTime"]
    assert TOPIC_KEY not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403])
def test_publish_returns_false_when_the_topic_rejects(topic: _Topic, status: int, caplog) -> None:
    topic.status = status
    assert notify.publish(_settings(topic.endpoint), notify.MODEL_SLEPT, "models/support-bot", {"model": "x"}) is False
    assert len(topic.requests) == 1  # client errors are not retried
    assert "could not publish Autotune.ModelSlept" in caplog.text
    assert TOPIC_KEY not in caplog.text


@pytest.mark.parametrize("endpoint", ["not a url", "ftp://127.0.0.1/api/events"])
def test_publish_never_raises_on_a_bad_endpoint(endpoint: str) -> None:
    assert notify.publish(_settings(endpoint), notify.MODEL_WOKE, "models/m", {}) is False


def test_publish_is_a_no_op_without_an_endpoint(topic: _Topic) -> None:
    assert notify.publish(_settings(""), notify.RUN_FAILED, "runs/r", {"run_id": "r"}) is False
    assert topic.requests == []
