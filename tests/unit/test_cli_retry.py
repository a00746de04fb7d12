"""``python -m shared retry RUN`` against a real loopback server: it posts to the run's retry route and prints
the new attempt, or the app's 409 reason."""

import pytest

from shared.cli import main
from tests.unit.test_cli_client import _Handler as AppHandler
from tests.unit.test_cli_client import serving


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
    with serving(_Handler) as url:
        yield url


def test_retry_prints_the_new_attempt(server, capsys):
    assert main(["retry", "bot-aaa", "--url", server]) == 0
    assert capsys.readouterr().out.strip() == "bot-aaa: submitted (attempt 2)"
    assert _Handler.posted[-1] == "/api/runs/bot-aaa/retry"


def test_retry_of_a_run_that_cannot_be_retried_says_why(server, capsys):
    assert main(["retry", "bot-bbb", "--url", server]) == 1
    err = capsys.readouterr().err
    assert "HTTP 409" in err and "run bot-bbb is live" in err
