"""An endpoint's router: ``python -m localml.router ENDPOINT_DIR`` (stdlib only, no torch).

It owns the endpoint's stable port and does what Azure ML's endpoint front end does: checks the key
(401 otherwise), picks a deployment by traffic weight, or the one the ``azureml-model-deployment`` header
pins (smoke tests of a deployment with no traffic), forwards the request to that deployment's model server
and answers with its response and an ``azureml-model-deployment`` header naming who answered. It records the
time of the last authenticated scoring request in ``last_request`` (the idle sweeper reads it).

State is re-read from the endpoint's files when they change, so traffic updates need no restart.
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from localml.scoring import PIN_HEADER
from localml.state import alive, http_server_on, inherited_socket, read_json, write_text_atomic
from shared.timeutil import iso

log = logging.getLogger("autotune.local.router")

UPSTREAM_TIMEOUT = 180.0  # Azure ML's managed endpoints allow 180 s per request


class Endpoint:
    """The endpoint's files, cached by modification time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict[Path, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _read(self, path: Path) -> Any:
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
        value = read_json(path)
        with self._lock:
            self._cache[path] = (mtime, value)
        return value

    def key(self) -> str:
        return (self._read(self.folder / "key.json") or {}).get("primary_key", "")

    def traffic(self) -> dict[str, int]:
        return {k: int(v) for k, v in ((self._read(self.folder / "endpoint.json") or {}).get("traffic") or {}).items()}

    def ready_port(self, deployment: str) -> int | None:
        """The model server's port if the deployment is provisioned and its process runs."""
        folder = self.folder / "deployments" / deployment
        spec = self._read(folder / "deployment.json")
        server = self._read(folder / "server.json")
        if not spec or spec.get("phase") != "succeeded" or not alive(server):
            return None
        return int(server["port"])

    def exists(self, deployment: str) -> bool:
        return (self.folder / "deployments" / deployment / "deployment.json").exists()

    def touch(self) -> None:
        write_text_atomic(self.folder / "last_request", iso())


class Handler(BaseHTTPRequestHandler):
    endpoint: Endpoint
    protocol_version = "HTTP/1.1"
    server_version = "autotune-local-endpoint"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", (headers or {}).pop("Content-Type", "application/json"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/", "/health", "/ready"):
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] not in ("/score", "/"):
            self._answer(404, {"error": f"no such path {self.path}; POST /score"})
            return
        expected = self.endpoint.key()
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            self._answer(401, {"error": "Unauthorized: a valid key is required (Authorization: Bearer <key>)"})
            return
        self.endpoint.touch()
        deployment, problem = self._choose()
        if deployment is None:
            self._answer(problem[0], {"error": problem[1]})
            return
        self._forward(deployment, body)

    def _choose(self) -> tuple[str | None, tuple[int, str]]:
        pinned = (self.headers.get(PIN_HEADER) or "").strip()
        if pinned:
            if not self.endpoint.exists(pinned):
                return None, (404, f"deployment {pinned!r} not found on this endpoint")
            if self.endpoint.ready_port(pinned) is None:
                return None, (503, f"deployment {pinned!r} is not ready")
            return pinned, (200, "")
        weighted = [
            (name, weight)
            for name, weight in self.endpoint.traffic().items()
            if weight > 0 and self.endpoint.ready_port(name) is not None
        ]
        if not weighted:
            return None, (503, "no deployment of this endpoint is ready and receives traffic")
        names, weights = zip(*weighted, strict=True)
        return random.choices(names, weights=weights)[0], (200, "")

    def _forward(self, deployment: str, body: bytes) -> None:
        port = self.endpoint.ready_port(deployment)
        if port is None:
            self._answer(503, {"error": f"deployment {deployment!r} is not ready"})
            return
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=UPSTREAM_TIMEOUT)
        try:
            connection.request(
                "POST",
                "/score",
                body=body,
                headers={
                    "Content-Type": self.headers.get("Content-Type", "application/json"),
                    "Authorization": self.headers.get("Authorization", ""),
                },
            )
            response = connection.getresponse()
            payload = response.read()
            headers = {
                "Content-Type": response.getheader("Content-Type", "application/json"),
                PIN_HEADER: deployment,
            }
            self._answer(response.status, payload, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._answer(502, {"error": f"deployment {deployment!r} did not answer: {type(exc).__name__}"})
        finally:
            connection.close()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = Path(argv[0])
    sock = inherited_socket()
    if sock is None:
        print("router: no listening socket handed over (AUTOTUNE_LISTEN_FD)", file=sys.stderr)
        return 2
    handler = type("BoundHandler", (Handler,), {"endpoint": Endpoint(folder)})
    server = http_server_on(sock, handler)
    log.info("endpoint router for %s on port %d", folder.name, sock.getsockname()[1])
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
