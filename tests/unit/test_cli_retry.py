"""``python -m shared retry RUN`` against a real loopback server: it posts to the run's retry route and prints
the new attempt, or the app's 409 reason."""

import threading
from http.server import ThreadingHTTPServer

import pytest

from shared.cli import main
from tests.unit.test_cli_client import _Handler as AppHandler


class _Handler(AppHandler):
    posted: list[str] = []

    def do_POST(self):
        self.posted.append(self.path)
        if self.path == "/api/runs/bot-aaa/retry":
            self._send(202, {"run_id": "bot-aaa", "state": "submitted", "attempt": 2, "error": None})
        else:
            self._send(409, {"error": {"code": "run_not_retryable", "message": "run bot-bbb is live; only failed"}})


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_retry_prints_the_new_attempt(server, capsys):
    assert main(["retry", "bot-aaa", "--url", server]) == 0
    assert capsys.readouterr().out.strip() == "bot-aaa: submitted (attempt 2)"
    assert _Handler.posted[-1] == "/api/runs/bot-aaa/retry"


def test_retry_of_a_run_that_cannot_be_retried_says_why(server, capsys):
    assert main(["retry", "bot-bbb", "--url", server]) == 1
    err = capsys.readouterr().err
    assert "HTTP 409" in err and "run bot-bbb is live" in err
