"""The one HTTP client that talks to scoring endpoints: pooled, with timeouts, one retry and key refresh.

Why these rules:
- One pooled ``aiohttp.ClientSession`` per worker process (per event loop, since a session belongs to the loop
  it runs on) keeps connections to the endpoint warm: a new TLS handshake would cost more than the gateway.
  aiohttp rather than httpx: httpx's async connection pool collapses under concurrency (encode/httpx#3215);
  measured here through the gateway at 32 requests in flight, 53 req/s with httpx against 390 with aiohttp.
- Connect and read timeouts come from settings; the read timeout stays below the endpoint's 180 s and the
  Functions 230 s limits. Their sum is the budget of the whole call, body and retries included (a retry only
  gets what is left), not only of each read.
- One retry, with jitter, on connection errors and on 503 (an endpoint scaling or restarting); none on other
  4xx/5xx (the request itself is wrong, or retrying would double a GPU's work) and none after a read timeout.
- A 401/403 from the endpoint means its key rotated: fetch the target again (fresh key) once and retry.
``aiohttp`` is imported on first use, keeping it out of the function app's cold start.
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
from shared.errors import RetryLater

if TYPE_CHECKING:
    import aiohttp

__all__ = ["UpstreamResult", "UpstreamTimeout", "UpstreamUnavailable", "aclose_client", "post"]

# The endpoint names the deployment that answered in this response header (Azure ML and the local backend).
DEPLOYMENT_HEADER = "azureml-model-deployment"
_KEPT_HEADERS = ("content-type", DEPLOYMENT_HEADER, "retry-after")


class UpstreamUnavailable(RetryLater):
    """The endpoint could not be reached (after the retry)."""

    code = "upstream_unavailable"


class UpstreamTimeout(RetryLater):
    """The endpoint did not answer within the read timeout."""

    code = "upstream_timeout"


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


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _session() -> aiohttp.ClientSession:
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=60, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)
        _sessions[loop] = session
    return session


async def aclose_client() -> None:
    """Close this event loop's client (tests and shutdown)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


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
    import aiohttp

    session = _session()
    started = time.perf_counter()
    deadline = started + connect_timeout + read_timeout
    transient_retry, auth_retry = True, True
    attempts = 0
    while True:
        attempts += 1
        remaining = max(deadline - time.perf_counter(), 0.5)
        # ``total`` bounds the whole attempt, body included: an endpoint sending a byte now and then never trips
        # ``sock_read`` (a per-read timeout), and would otherwise hold the request past the host's 230 s.
        timeout = aiohttp.ClientTimeout(
            total=remaining, sock_connect=min(connect_timeout, remaining), sock_read=min(read_timeout, remaining)
        )
        headers = {"Content-Type": "application/json", "Accept": "application/json", **target.headers}
        error: Exception | None = None
        try:
            async with session.post(
                target.uri, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                content = await response.read()
                kept = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        except aiohttp.ConnectionTimeoutError as exc:  # before TimeoutError: connecting may be retried
            error = exc
        except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
            raise UpstreamTimeout(f"no answer within {read_timeout:g} s") from exc
        except aiohttp.ClientError as exc:  # connection refused/reset, server disconnected, broken payload
            error = exc
        if error is not None:
            if transient_retry and deadline - time.perf_counter() > 1.0:
                transient_retry = False
                await asyncio.sleep(_jitter())
                continue
            raise UpstreamUnavailable(f"{type(error).__name__} after {attempts} attempt(s)") from error
        if status in (401, 403) and auth_retry:
            auth_retry = False
            target = await refresh()
            continue
        if status == 503 and transient_retry and deadline - time.perf_counter() > 1.0:
            transient_retry = False
            await asyncio.sleep(_jitter())
            continue
        return UpstreamResult(status, content, kept, time.perf_counter() - started, attempts)
