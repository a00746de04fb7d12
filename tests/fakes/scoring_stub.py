"""A tiny, fast server speaking the Azure ML scoring contract, for tests, benchmarks and local trials.

Why it exists: the gateway's failure paths (a 500, a timeout, a garbage body, a rotated key) cannot be produced
on demand by a real endpoint, and the gateway benchmark needs an upstream fast enough that the gateway, not the
model, is what is measured. It speaks HTTP/1.1 with keep-alive on plain asyncio streams (no framework), checks
``Authorization: Bearer <key>`` and answers ``{"output": ...}`` with an ``azureml-model-deployment`` header,
as a managed online endpoint does. It is never imported by the function app.

Run standalone: ``python -m tests.fakes.scoring_stub --port 0 --key KEY`` prints ``stub listening on http://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["StubReply", "StubRequest", "StubScoringServer"]


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class StubReply:
    """A scripted answer: ``delay`` seconds first; ``drop`` closes the connection without answering; ``trickle``
    sends the body one byte at a time, that many seconds apart (an endpoint that never quite stops answering)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    trickle: float = 0.0


class StubScoringServer:
    """Start with ``start()`` (runs on its own thread and event loop); ``url`` is its scoring URI."""

    def __init__(
        self,
        key: str = "stub-key",
        deployment: str = "v1",
        answer: Callable[[Any], str] | str = "Hello from the stub endpoint.",
        record: bool = True,
    ):
        self.key = key
        self.deployment = deployment
        self.answer = answer
        self.record = record
        self.script: list[StubReply] = []  # consumed first, one per request
        self.requests: list[StubRequest] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, port: int = 0) -> StubScoringServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", port, backlog=512))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="stub-scoring", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def shutdown() -> None:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None

    def __enter__(self) -> StubScoringServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol --------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                request = StubRequest(method, path, headers, body)
                if self.record:
                    self.requests.append(request)
                reply = self.script.pop(0) if self.script else self._default(request)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop:
                    return
                encoded = self._encode(reply)
                if reply.trickle:
                    head = len(encoded) - len(reply.body)
                    writer.write(encoded[:head])
                    for index in range(head, len(encoded)):
                        await writer.drain()
                        await asyncio.sleep(reply.trickle)
                        writer.write(encoded[index : index + 1])
                else:
                    writer.write(encoded)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()
            self._connections.discard(task)  # type: ignore[arg-type]

    def _encode(self, reply: StubReply) -> bytes:
        headers = {"content-type": "application/json", "azureml-model-deployment": self.deployment, **reply.headers}
        reason = HTTPStatus(reply.status).phrase if reply.status in HTTPStatus._value2member_map_ else "Status"
        head = [f"HTTP/1.1 {reply.status} {reason}", f"content-length: {len(reply.body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body

    def _default(self, request: StubRequest) -> StubReply:
        """The scoring contract: POST, Bearer key, JSON ``input_data`` in, ``{"output": ...}`` out."""
        if request.method != "POST":
            return StubReply(405, b'{"message": "POST only"}')
        if request.headers.get("authorization", "") != f"Bearer {self.key}":
            return StubReply(401, b'{"message": "key_auth_access_denied"}')
        try:
            payload = json.loads(request.body)
            if "input_data" not in payload:
                raise KeyError("input_data")
        except (ValueError, KeyError, TypeError):
            return StubReply(400, b'{"message": "expected {\\"input_data\\": ...}"}')
        text = self.answer(payload) if callable(self.answer) else self.answer
        return StubReply(200, json.dumps({"output": text}).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="stub-key")
    parser.add_argument("--answer", default="Hello from the stub endpoint.")
    args = parser.parse_args()
    stub = StubScoringServer(key=args.key, answer=args.answer, record=False).start(args.port)
    print(f"stub listening on {stub.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
