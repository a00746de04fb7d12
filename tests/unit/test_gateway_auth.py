"""API keys: Bearer or api-key header, several keys for rotation, 401 otherwise, keys never echoed."""

import pytest

from shared.gateway.auth import check_api_key, presented_key
from shared.gateway.errors import GatewayError

KEYS = ("old-key", "new-key")


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer old-key"},
        {"authorization": "bearer new-key"},
        {"api-key": "new-key"},
        {"authorization": "Basic xyz", "api-key": "old-key"},
    ],
)
def test_either_header_and_either_key_is_accepted(headers):
    check_api_key(headers, KEYS)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"authorization": "Bearer "}, "missing_api_key"),
        ({"authorization": "Bearer wrong"}, "invalid_api_key"),
        ({"api-key": "old-key-but-longer"}, "invalid_api_key"),
        ({"authorization": "Bearer old"}, "invalid_api_key"),
    ],
)
def test_anything_else_is_401_without_echoing_keys(headers, code):
    with pytest.raises(GatewayError) as info:
        check_api_key(headers, KEYS)
    assert info.value.status == 401 and info.value.code == code
    assert info.value.headers["WWW-Authenticate"] == "Bearer"
    assert "old-key" not in info.value.message and "wrong" not in info.value.message


def test_no_configured_keys_refuses_everything_and_names_the_setting():
    with pytest.raises(GatewayError) as info:
        check_api_key({"authorization": "Bearer anything"}, ())
    assert info.value.status == 401 and "GATEWAY_API_KEYS" in info.value.message


def test_presented_key_prefers_bearer():
    assert presented_key({"authorization": "Bearer a", "api-key": "b"}) == "a"
