"""The scoring contract's checks (the serving predictor's assertions), as the local servers apply them."""

from __future__ import annotations

import pytest

from localml.scoring import ScoringInputError, check_conversation, parse_request

U, A, S = "user", "assistant", "system"


def conv(*roles: str) -> list[dict[str, str]]:
    return [{"role": role, "content": f"{role} {i}"} for i, role in enumerate(roles)]


@pytest.mark.parametrize("roles", [(U,), (S, U), (U, A, U), (S, U, A, U)])
def test_valid_conversations_pass(roles) -> None:
    assert [m["role"] for m in check_conversation(conv(*roles))] == list(roles)


@pytest.mark.parametrize(
    ("roles", "words"),
    [
        ((), "non-empty"),
        ((U, S), "only allowed first"),
        ((U, U), "must alternate"),
        ((A, U), "must alternate"),
        ((U, A), "last message"),
        ((S,), "only a system message"),
        ((U, "tool"), "role must be"),
    ],
)
def test_predictor_assertions_are_enforced(roles, words) -> None:
    with pytest.raises(ScoringInputError, match=words):
        check_conversation(conv(*roles))


def test_message_shape_is_checked_with_its_position() -> None:
    with pytest.raises(ScoringInputError, match=r"input_string\[1\]"):
        check_conversation([{"role": "user", "content": "a"}, {"role": "assistant"}])


def test_request_single_and_batch() -> None:
    single = {"input_data": {"input_string": conv(U), "parameters": {"max_new_tokens": 5, "do_sample": False}}}
    conversations, is_single, params = parse_request(single)
    assert is_single and len(conversations) == 1 and params == {"max_new_tokens": 5, "do_sample": False}
    batch = {"input_data": {"input_string": [conv(U), conv(S, U)]}, "params": {}}
    conversations, is_single, params = parse_request(batch)
    assert not is_single and len(conversations) == 2 and params == {}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "input_data"),
        ({"input_data": {"input_string": conv(U), "parameters": {"max_new_tokens": "lots"}}}, "max_new_tokens"),
        ({"input_data": {"input_string": conv(U), "parameters": {"max_new_tokens": 0}}}, "between 1 and"),
        ({"input_data": {"input_string": conv(U), "parameters": {"top_p": 2}}}, "top_p"),
        ({"input_data": {"input_string": conv(U), "parameters": {"do_sample": "yes"}}}, "do_sample"),
        ({"input_data": {"input_string": conv(U), "parameters": []}}, "parameters must be an object"),
        ({"input_data": {"input_string": [conv(U), conv(U, A)]}}, r"input_string\[1\]"),
    ],
)
def test_bad_requests_say_what_is_wrong(body, words) -> None:
    with pytest.raises(ScoringInputError, match=words):
        parse_request(body)
