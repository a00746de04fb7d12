"""The real app in the devhost at the edges of HTTP: long credentials and bodies without a length.

One devhost runs ``function_app.py`` with the test's isolated settings; requests go over real HTTP, so the
host's header limits and its body rule (no ``Content-Length``, no body, as the Functions host does) apply.
"""

from __future__ import annotations

import httpx

from devhost.testing import DevHostProcess

MESSAGES = [{"role": "user", "content": "hello"}]


def test_long_bogus_keys_are_401_and_chunked_uploads_are_411(app_env: dict[str, str]) -> None:
    with DevHostProcess(env=app_env) as host, httpx.Client(base_url=host.url, timeout=30) as http:
        for length in (10, 10_000, 30_000):
            bogus = "bogus-key-" + "k" * length
            answer = http.post(
                "/v1/chat/completions",
                json={"model": "support-bot", "messages": MESSAGES},
                headers={"Authorization": f"Bearer {bogus}"},
            )
            assert answer.status_code == 401, answer.text[:300]
            assert answer.json()["error"]["code"] == "invalid_api_key"
            assert "bogus-key-" not in answer.text

        def chunks():
            yield b'{"messages": [{"role": "user", "content": "hi"}, '
            yield b'{"role": "assistant", "content": "hello"}]}\n'

        chunked = http.post("/api/models/support-bot/datasets", content=chunks())
        assert chunked.status_code == 411, chunked.text
        error = chunked.json()["error"]
        assert error["code"] == "length_required" and "Content-Length" in error["message"]
        imported = http.post("/api/models/support-bot/imports", content=chunks())
        assert imported.status_code == 411 and "Content-Length" in imported.json()["error"]["message"]
    assert "bogus-key-" not in host.log()
