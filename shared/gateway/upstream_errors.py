"""What the caller hears when the endpoint's answer is not a success, or not a chat answer.

Why its own module: the mapping is the gateway's contract with clients (OpenAI-shaped errors with stable codes and
``Retry-After`` where waiting helps) and is read and tested apart from the request flow in ``service``: the native
route passes 4xx through as is, the OpenAI route turns them into 400 ``upstream_rejected``, credentials and
endpoint failures become 502 (the gateway's upstream failed, not the caller), throttling stays 429.
"""

from __future__ import annotations

from shared.gateway import openai_api
from shared.gateway.errors import GatewayError
from shared.gateway.upstream import UpstreamResult
from shared.jsonbody import parse_json_body

SNIPPET_BYTES = 300  # of the endpoint's body, quoted in errors


def snippet(body: bytes) -> str:
    text = body[:SNIPPET_BYTES].decode("utf-8", "replace").strip()
    return text + ("..." if len(body) > SNIPPET_BYTES else "")


def raise_for_upstream(result: UpstreamResult, *, native: bool) -> None:
    """Map a non-2xx endpoint answer to the caller's error (the native route passes 4xx through as is)."""
    status = result.status
    if 200 <= status < 300:
        return
    detail = snippet(result.body)
    if status in (401, 403):
        raise GatewayError(
            502,
            f"the endpoint rejected the gateway's credentials (HTTP {status}) even after refreshing its key",
            code="upstream_auth_failed",
        )
    if status == 429:
        raise GatewayError(
            429,
            f"the endpoint is throttling requests: {detail}",
            code="upstream_rate_limited",
            headers={"Retry-After": result.headers.get("retry-after", "5")},
        )
    if status == 503:
        raise GatewayError(
            503,
            f"the endpoint is unavailable (HTTP 503): {detail}",
            code="upstream_unavailable",
            headers={"Retry-After": result.headers.get("retry-after", "5")},
        )
    if 400 <= status < 500 and status != 404 and not native:
        raise GatewayError(
            400, f"the endpoint rejected the request (HTTP {status}): {detail}", code="upstream_rejected"
        )
    if status >= 500 or status == 404 or not 200 <= status < 500:
        raise GatewayError(502, f"the endpoint failed (HTTP {status}): {detail}", code="upstream_error")


def answer_text(result: UpstreamResult) -> str:
    try:
        return openai_api.parse_scoring_output(parse_json_body(result.body, what="the answer"))
    except (ValueError, openai_api.UnrecognisedOutput) as exc:
        raise GatewayError(
            502,
            f"the endpoint's answer is not a chat-completion scoring response ({exc}): {snippet(result.body)}",
            code="upstream_bad_response",
        ) from exc
