"""The endpoint's non-success answers as the caller hears them (status, stable code, Retry-After), on both routes."""

from __future__ import annotations

import pytest

from shared.gateway.errors import GatewayError
from shared.gateway.upstream import UpstreamResult
from shared.gateway.upstream_errors import SNIPPET_BYTES, answer_text, raise_for_upstream


@pytest.mark.parametrize(
    ("status", "native", "expected", "code"),
    [
        (401, False, 502, "upstream_auth_failed"),
        (403, True, 502, "upstream_auth_failed"),
        (429, False, 429, "upstream_rate_limited"),
        (503, True, 503, "upstream_unavailable"),
        (422, False, 400, "upstream_rejected"),
        (404, False, 502, "upstream_error"),
        (500, True, 502, "upstream_error"),
    ],
)
def test_failures_map_to_the_callers_error(status, native, expected, code):
    with pytest.raises(GatewayError) as caught:
        raise_for_upstream(UpstreamResult(status, b'{"error": "nope"}', {"retry-after": "7"}), native=native)
    assert (caught.value.status, caught.value.code) == (expected, code)
    if expected in (429, 503):
        assert caught.value.headers == {"Retry-After": "7"}


def test_the_native_route_passes_client_errors_through():
    raise_for_upstream(UpstreamResult(422, b"{}"), native=True)  # the caller gets the endpoint's own 422
    raise_for_upstream(UpstreamResult(200, b"{}"), native=False)


def test_a_long_body_is_quoted_cut():
    with pytest.raises(GatewayError) as caught:
        raise_for_upstream(UpstreamResult(500, b"x" * (SNIPPET_BYTES * 3)), native=False)
    assert caught.value.message.endswith("x" * 10 + "...")
    assert len(caught.value.message) < SNIPPET_BYTES + 100


def test_an_answer_that_is_not_a_chat_scoring_response_is_a_502():
    with pytest.raises(GatewayError) as caught:
        answer_text(UpstreamResult(200, b'{"unexpected": true}'))
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
