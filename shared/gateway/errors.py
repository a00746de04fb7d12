"""Errors in OpenAI's shape: ``{"error": {"message", "type", "code", "param"}}`` with the right HTTP status.

Why one exception type: every failure on the hot path (bad request, bad key, unknown model, a sleeping model,
an upstream failure) ends as the same JSON body, which the ``openai`` client turns into its own exception
classes by status (BadRequestError, AuthenticationError, NotFoundError, APIStatusError ...).
"""

from __future__ import annotations

from typing import Any

from shared.errors import AutotuneError

# OpenAI's ``type`` values by status; the client keys its exception class on the status, people read the type.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class GatewayError(AutotuneError):
    """A request that ends in an error response. ``headers`` carries e.g. ``Retry-After``."""

    code = "gateway_error"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, code=code, param=param)
