"""The CLI's client against real loopback servers: clear errors for unreachable apps and refused keys."""

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.cli import main


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("x-functions-key") != "good":
            self._send(401, {"error": {"message": "no"}})
        else:
            self._send(200, {"models": [{"model": "support-bot", "state": "live", "live_version": "3"}]})

    def do_POST(self):
        self._send(404, {"error": {"code": "not_found", "message": "model ghost does not exist"}})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free loopback port for the duration of the block; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@pytest.fixture
def server():
    with serving(_Handler) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_app_is_named(capsys):
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["models", "--url", url]) == 1
    assert f"cannot reach the app at {url}" in capsys.readouterr().err


def test_wrong_key_is_explained(server, capsys):
    assert main(["models", "--url", server, "--function-key", "bad"]) == 1
    assert "refused the key (HTTP 401)" in capsys.readouterr().err


def test_models_table(server, capsys):
    assert main(["models", "--url", server, "--function-key", "good"]) == 0
    out = capsys.readouterr().out
    assert "support-bot" in out and "live" in out


def test_api_error_message_is_shown(server, capsys):
    assert main(["wake", "ghost", "--url", server, "--function-key", "good"]) == 1
    assert "model ghost does not exist" in capsys.readouterr().err


def test_local_settings_fill_what_the_environment_lacks(tmp_path, monkeypatch):
    from shared.cli.client import client_environment
    from shared.settings import load_client_settings

    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"GATEWAY_API_KEYS": "from-file", "AUTOTUNE_HOST_URL": "http://127.0.0.1:7999"}})
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_API_KEYS", raising=False)
    monkeypatch.setenv("AUTOTUNE_HOST_URL", "http://127.0.0.1:8123")  # the environment wins, as with func
    conf = load_client_settings(client_environment())
    assert conf["gateway_api_keys"] == ("from-file",)
    assert conf["host_url"] == "http://127.0.0.1:8123"
    assert "GATEWAY_API_KEYS" not in os.environ  # read, never written into the process
