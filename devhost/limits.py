"""The request limits of the Functions host (Kestrel), and its habit of never echoing a request back.

Why: aiohttp's defaults are not the host's. It refused any header line over 8 KB (Kestrel takes 32 KB of headers
in all, so a long ``Authorization`` works in Azure), and it answered a request it could not parse with the
parser's message, which quotes the offending line: a credential in a header came back in the response body and
went to the log. Here the limits are Kestrel's defaults, an over-limit request gets a bare 431 (414 for the
request line), and nothing of the request is echoed or logged.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("devhost")

# Kestrel's defaults: MaxRequestLineSize, MaxRequestHeadersTotalSize, MaxRequestHeaderCount.
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_COUNT = 100
# One header may use the whole budget; the total is checked per request (``headers_too_large``).
PARSER_LIMITS: dict[str, Any] = {
    "max_line_size": MAX_REQUEST_LINE_BYTES,
    "max_field_size": MAX_HEADER_BYTES,
    "max_headers": MAX_HEADER_COUNT,
}


def headers_too_large(request: web.BaseRequest) -> bool:
    """More header bytes than Kestrel takes in all (name, value, ``: `` and the line end of each)."""
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers) > MAX_HEADER_BYTES


def header_limit_response() -> web.Response:
    return _bare(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)


def _bare(status: HTTPStatus) -> web.Response:
    response = web.Response(status=status.value, text=status.phrase)
    response.force_close()
    return response


class _QuietRequestHandler(RequestHandler):
    """aiohttp's connection handler, minus the echo: a request it cannot parse gets a bare status."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            line = limit == MAX_REQUEST_LINE_BYTES and limit != MAX_HEADER_BYTES
            answer = HTTPStatus.REQUEST_URI_TOO_LONG if line else HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        elif "too many headers" in str(exc).lower():
            answer = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        else:
            answer = HTTPStatus.BAD_REQUEST
        log.warning("refused a request from %s: %d %s (%s)", request.remote, answer, answer.phrase, type(exc).__name__)
        return _bare(answer)


class KestrelLimitedServer(web.Server):
    """``web.Server`` whose connections use ``_QuietRequestHandler`` (same arguments as ``web.Server``)."""

    def __call__(self) -> RequestHandler:
        # web.Server keeps its handler arguments in ``_kwargs`` and builds one RequestHandler per connection.
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)
