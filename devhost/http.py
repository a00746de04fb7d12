"""HTTP triggers: Azure's route templates, ``func.HttpRequest`` in, ``func.HttpResponse`` out.

Routes follow the Functions host (ASP.NET Core routing): ``routePrefix`` from host.json (``api`` when unset),
the function name when a function declares no route, ``{param}``, ``{param:constraint}``, ``{param?}`` and
``{*catchall}``; literals match case-insensitively, and when several templates match, the most specific wins
(literal before constrained before plain parameter before catch-all). A path whose template allows another
method is a 404, as in Azure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devhost.bindings import HTTP_TRIGGER, FunctionSpec

MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit

_PARAM = re.compile(r"\{([^{}]+)\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}


def route_prefix(script_root: Path) -> str:
    """``extensions.http.routePrefix`` of host.json; ``api`` when host.json does not set it."""
    try:
        host = json.loads((script_root / "host.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "api"
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix).strip("/")


@dataclass
class Route:
    """One HTTP function's compiled template."""

    spec: FunctionSpec
    template: str
    methods: frozenset[str] | None  # None: every method
    pattern: re.Pattern[str]
    precedence: tuple[float, ...]

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def _segment(segment: str) -> tuple[str, float]:
    """Regex and precedence rank of one template segment (lower rank = more specific)."""
    params = list(_PARAM.finditer(segment))
    if not params:
        return re.escape(segment), 1
    if len(params) == 1 and params[0].group(0) == segment:
        body = params[0].group(1)
        if body.startswith("*"):
            name = body.lstrip("*").split(":", 1)[0].split("=", 1)[0]
            return f"(?P<{name}>.*)", 5
        optional = body.endswith("?")
        name, *constraints = body.rstrip("?").split("=", 1)[0].split(":")
        regex = _constraint_regex(constraints)
        rank = 3 if constraints else 4
        return f"(?P<{name}>{regex})", rank + (0.5 if optional else 0)
    # A complex segment such as {name}.{ext}: literals and parameters inside one segment.
    regex, position = "", 0
    for match in params:
        regex += re.escape(segment[position : match.start()])
        name, *constraints = match.group(1).rstrip("?").split("=", 1)[0].split(":")
        regex += f"(?P<{name}>{_constraint_regex(constraints) if constraints else '[^/]+?'})"
        position = match.end()
    return regex + re.escape(segment[position:]), 2


def _constraint_regex(constraints: list[str]) -> str:
    for constraint in constraints:
        if constraint in _CONSTRAINTS:
            return _CONSTRAINTS[constraint]
        if constraint.startswith("regex(") and constraint.endswith(")"):
            return f"(?:{constraint[6:-1].lstrip('^').rstrip('$')})"
    return "[^/]+"


def compile_route(spec: FunctionSpec, prefix: str) -> Route:
    raw = str(spec.trigger.get("route") or spec.name).strip("/")
    template = f"{prefix}/{raw}" if prefix else raw
    regex, ranks = "", []
    for index, segment in enumerate(template.split("/")):
        part, rank = _segment(segment)
        separator = "/" if index else ""
        if rank in (3.5, 4.5, 5):  # optional and catch-all segments may be absent, slash included
            regex += f"(?:{separator}{part})?"
        else:
            regex += separator + part
        ranks.append(rank)
    methods = spec.trigger.get("methods")
    allowed = frozenset(str(m).upper() for m in methods) if methods else None
    return Route(spec, template, allowed, re.compile(f"(?i:{regex})"), tuple(ranks))


class Router:
    """The HTTP functions of the app, most specific template first."""

    def __init__(self, specs: list[FunctionSpec], prefix: str) -> None:
        routes = [compile_route(spec, prefix) for spec in specs if spec.trigger_type == HTTP_TRIGGER]
        self.routes = sorted(routes, key=lambda r: (r.precedence, -len(r.precedence)))

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        path = raw_path.strip("/")
        for route in self.routes:
            if not route.allows(method):
                continue
            found = route.pattern.fullmatch(path)
            if found:
                params = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
                return route, params
        return None


def build_request(request: web.BaseRequest, body: bytes, route_params: dict[str, str]) -> func.HttpRequest:
    """The ``func.HttpRequest`` the worker would build; repeated headers and query keys are comma-joined."""
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        lower = key.lower()
        headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
    params: dict[str, str] = {}
    for key, value in request.query.items():
        params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=params,
        route_params=route_params,
        body=body,
    )


def to_response(result: Any) -> web.Response:
    """Map a function's return value to HTTP the way the worker's HTTP converter does."""
    if isinstance(result, func.HttpResponse):
        headers = CIMultiDict((str(k), str(v)) for k, v in result.headers.items())
        if "content-type" not in headers:
            mimetype = result.mimetype
            headers["Content-Type"] = (
                f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            )
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if isinstance(result, str):
        return web.Response(status=200, text=result)
    if result is None:
        return web.Response(status=204)
    raise TypeError(f"an HTTP function must return func.HttpResponse or str, got {type(result).__name__}")


async def read_body(request: web.BaseRequest) -> bytes | web.Response:
    """The request body, or a 413 response past the host's size limit.

    Like the Functions host, only a body announced by ``Content-Length`` is passed on: a chunked request
    without one reaches the function with an empty body (the app answers 411 where it needs the body).
    """
    if request.content_length is not None and request.content_length > MAX_REQUEST_BODY_BYTES:
        return web.Response(status=413, text=f"request body over {MAX_REQUEST_BODY_BYTES} bytes")
    if not request.content_length:
        return b""
    chunks, size = [], 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > MAX_REQUEST_BODY_BYTES:
            return web.Response(status=413, text=f"request body over {MAX_REQUEST_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
