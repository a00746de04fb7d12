"""The one HTTP client that talks to scoring endpoints: pooled, with timeouts, one retry and key refresh.

Why these rules:
- One pooled ``httpx.AsyncClient`` per worker process (per event loop, since a client belongs to the loop it
  runs on) keeps TLS connections to the endpoint warm: a new TLS handshake would cost more than the gateway.
- Connect and read timeouts come from settings; the read timeout stays below the endpoint's 180 s and the
  Functions 230 s limits, and a retry only gets what is left of the first attempt's budget.
- One retry, with jitter, on connection errors and on 503 (an endpoint scaling or restarting); none on other
  4xx/5xx (the request itself is wrong, or retrying would double a GPU's work) and none after a read timeout.
- A 401/403 from the endpoint means its key rotated: fetch the target again (fresh key) once and retry.
``httpx`` is imported on first use, keeping it out of the function app's cold start.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.backends.base import ScoringTarget

if TYPE_CHECKING:
    import httpx

__all__ = ["UpstreamResult", "UpstreamTimeout", "UpstreamUnavailable", "aclose_client", "post"]

# The endpoint names the deployment that answered in this response header (Azure ML and the local backend).
DEPLOYMENT_HEADER = "azureml-model-deployment"
_KEPT_HEADERS = ("content-type", DEPLOYMENT_HEADER, "retry-after", "x-ms-request-id", "x-request-id")


class UpstreamUnavailable(Exception):
    """The endpoint could not be reached (after the retry)."""


class UpstreamTimeout(Exception):
    """The endpoint did not answer within the read timeout."""


@dataclass
class UpstreamResult:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0  # seconds spent waiting on the endpoint, retries and their pauses included
    attempts: int = 1

    @property
    def deployment(self) -> str:
        return self.headers.get(DEPLOYMENT_HEADER, "")


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple[float, float], Any]] = (
    weakref.WeakKeyDictionary()
)


def _client(connect: float, read: float) -> httpx.AsyncClient:
    import httpx

    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is not None and entry[0] == (connect, read) and not entry[1].is_closed:
        return entry[1]
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(read, connect=connect, pool=connect),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=60),
        follow_redirects=False,
        trust_env=False,
    )
    _clients[loop] = ((connect, read), client)
    return client


async def aclose_client() -> None:
    """Close this event loop's client (tests and shutdown)."""
    entry = _clients.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[1].aclose()


def _jitter() -> float:
    return random.uniform(0.05, 0.25)


async def post(
    target: ScoringTarget,
    body: bytes,
    *,
    connect_timeout: float,
    read_timeout: float,
    refresh: Callable[[], Awaitable[ScoringTarget]],
) -> UpstreamResult:
    """POST ``body`` to the target. Returns any HTTP answer (the caller maps statuses); raises
    ``UpstreamUnavailable`` / ``UpstreamTimeout`` when there is none."""
    import httpx

    client = _client(connect_timeout, read_timeout)
    started = time.perf_counter()
    deadline = started + connect_timeout + read_timeout
    transient_retry, auth_retry = True, True
    attempts = 0
    while True:
        attempts += 1
        remaining = max(deadline - time.perf_counter(), 0.5)
        timeout = httpx.Timeout(min(read_timeout, remaining), connect=min(connect_timeout, remaining))
        headers = {"Content-Type": "application/json", "Accept": "application/json", **target.headers}
        try:
            response = await client.post(target.uri, content=body, headers=headers, timeout=timeout)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise UpstreamTimeout(f"no answer within {read_timeout:g} s") from exc
        except httpx.TransportError as exc:  # connect errors/timeouts, dropped connections, pool exhaustion
            if transient_retry and deadline - time.perf_counter() > 1.0:
                transient_retry = False
                await asyncio.sleep(_jitter())
                continue
            raise UpstreamUnavailable(f"{type(exc).__name__} after {attempts} attempt(s)") from exc
        status = response.status_code
        if status in (401, 403) and auth_retry:
            auth_retry = False
            target = await refresh()
            continue
        if status == 503 and transient_retry and deadline - time.perf_counter() > 1.0:
            transient_retry = False
            await asyncio.sleep(_jitter())
            continue
        kept = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        return UpstreamResult(status, response.content, kept, time.perf_counter() - started, attempts)
