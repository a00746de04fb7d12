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
