"""Parsing a JSON request body: every way it can fail is one ``InvalidJSONBody`` (a 400 ``invalid_request``).

Why one function: the stdlib parser fails in more ways than ``ValueError``. A body nested deeply enough (a few
thousand levels suffice; 100,000 certainly) raises ``RecursionError``, which every route caught as an unexpected
failure and answered 500. Every route that reads a JSON body parses it here, so malformed, undecodable and
absurdly nested bodies all get the same clear 400.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import BadInput

__all__ = ["InvalidJSONBody", "parse_json_body"]


class InvalidJSONBody(BadInput, ValueError):
    """The body is not a JSON document this app can read; the message says why (and where, when known)."""

    code = "invalid_request"


def parse_json_body(body: bytes | str, *, what: str = "the request body") -> Any:
    """The parsed document, or ``InvalidJSONBody`` naming ``what`` and the parser's reason."""
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidJSONBody(f"{what} is not valid JSON: it is nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise InvalidJSONBody(f"{what} is not valid JSON: {exc}") from None
