"""The one place where results and errors of ``shared/`` become HTTP responses (except the OpenAI gateway, whose
replies follow the OpenAI contract; see ``functions/gateway.py``).

``shared/`` returns plain bodies or an ``Answer`` (``accepted`` when work continues in the background), and raises
errors of ``shared.errors``; their *family* decides the status here, a few codes refine it, and every error body
has one shape: ``{"error": {"code", "message", "field"?, ...details}}``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:
    from shared.dropzone import Answer

STATUS_BY_FAMILY = {
    "bad_input": 400,
    "not_found": 404,
    "conflict": 409,
    "retry_later": 503,
    "platform_error": 502,
}
# codes whose status is more precise than their family's
STATUS_BY_CODE = {"payload_too_large": 413, "invalid_setting": 500}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype="application/json",
        headers=headers,
    )


def error_response(status: int, code: str, message: str, **extra: Any) -> func.HttpResponse:
    """``{"error": {"code", "message", ...}}``: the same shape for every non-OpenAI route."""
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


def length_required(req: func.HttpRequest) -> func.HttpResponse | None:
    """411 for a body sent without ``Content-Length`` (chunked): the Functions host passes such a body on as
    empty, so the function would see nothing; None when the request is fine."""
    if req.get_body() or "content-length" in {name.lower() for name in req.headers}:
        return None
    return error_response(
        411,
        "length_required",
        "send the body with a Content-Length header: the Functions host drops a body sent without one (chunked)",
        field="body",
    )


def not_found(code: str, message: str, **extra: Any) -> func.HttpResponse:
    """For an entry point that answers ``None`` for something that does not exist."""
    return error_response(STATUS_BY_FAMILY["not_found"], code, message, **extra)


def error_from(exc: BaseException) -> func.HttpResponse:
    """The response for a domain error (an ``AutotuneError``): status from its code or family, body from the error."""
    from shared.errors import code_of, family_of

    code = code_of(exc)
    status = STATUS_BY_CODE.get(code) or STATUS_BY_FAMILY.get(family_of(exc), 500)
    extra: dict[str, Any] = {}
    field = getattr(exc, "field", None)
    if field:
        extra["field"] = field
    extra.update(getattr(exc, "details", None) or {})
    return error_response(status, code, str(exc), **extra)


def answer(result: Answer | dict[str, Any]) -> func.HttpResponse:
    """200 with the body; 202 (and ``Location``: the status URL) when the request was accepted as background work."""
    from shared.dropzone import Answer

    if not isinstance(result, Answer):
        return json_response(result)
    if not result.accepted:
        return json_response(result.body)
    location = result.body.get("status_url")
    return json_response(result.body, 202, {"Location": location} if location else None)


def handles_errors(handler: Callable[[func.HttpRequest], func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Wrap an HTTP trigger so that a domain error becomes its response (anything else still fails the call)."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        from shared.errors import AutotuneError

        try:
            return handler(req)
        except AutotuneError as exc:
            return error_from(exc)

    return wrapper
