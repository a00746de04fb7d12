"""Small helpers shared by the HTTP triggers: JSON responses and errors in one shape."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


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
