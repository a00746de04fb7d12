"""API keys for the gateway: ``GATEWAY_API_KEYS`` (several, for rotation).

Accepted as ``Authorization: Bearer <key>`` (what the ``openai`` client sends) or ``api-key: <key>`` (what
Azure OpenAI clients send). Every configured key is compared in constant time, and all of them are always
compared, so neither the timing nor the order reveals which key (or how much of one) matched. Keys are never
logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from shared.gateway.errors import GatewayError

__all__ = ["check_api_key", "presented_key"]


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a caller sent, from ``Authorization: Bearer`` or ``api-key`` (header names are lower-case)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("api-key", "").strip()


def _matches(candidate: str, keys: tuple[str, ...]) -> bool:
    given = candidate.encode()
    matched = False
    for key in keys:
        # No short-circuit: every key is compared whatever the outcome.
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def check_api_key(headers: Mapping[str, str], keys: tuple[str, ...]) -> None:
    """Raise a 401 ``GatewayError`` unless the request carries one of ``keys``."""
    if not keys:
        raise GatewayError(
            401,
            "the gateway has no API keys configured: set GATEWAY_API_KEYS (comma-separated) to accept requests",
            code="no_api_keys_configured",
            headers={"WWW-Authenticate": "Bearer"},
        )
    candidate = presented_key(headers)
    if not candidate:
        raise GatewayError(
            401,
            "missing API key: send 'Authorization: Bearer <key>' or 'api-key: <key>'",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(candidate, keys):
        raise GatewayError(
            401, "incorrect API key provided", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
