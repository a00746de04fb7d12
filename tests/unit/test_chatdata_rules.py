"""Per-line rules: every reason code with its line number and detail, warnings, the three shapes, normalisation."""

from __future__ import annotations

import json

import pytest

from shared.chatdata import REASONS
from tests.unit.chatdata_helpers import assert_invariant, conv, jsonl, run

U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}
S = {"role": "system", "content": "be brief"}

# (line bytes, reason code, a fragment the detail must contain)
BAD_LINES = [
    (b'{"messages": [\xff\xfe]}', "invalid_utf8", "byte 0xff"),
    (b'{"messages": [', "invalid_json", "column"),
    (b"[1, 2, 3]", "not_an_object", "an array"),
    (b'"just a string"', "not_an_object", "a string"),
    (json.dumps({"text": "hello"}).encode(), "missing_messages", "keys found: text"),
    (json.dumps({"messages": []}).encode(), "missing_messages", "empty list"),
    (json.dumps({"messages": "hello"}).encode(), "missing_messages", "a string"),
    (json.dumps({"messages": ["hi", A]}).encode(), "invalid_message", "message 1 is a string"),
    (json.dumps({"messages": [{"content": "x"}, A]}).encode(), "invalid_message", '"role" is missing'),
    (json.dumps({"messages": [{"role": "user"}, A]}).encode(), "invalid_message", '"content" is missing'),
    (json.dumps({"messages": [{"role": "user", "content": 5}, A]}).encode(), "invalid_message", "a number"),
    (
        json.dumps({"messages": [U, {"role": "assistant", "content": "x", "weight": 2}]}).encode(),
        "invalid_message",
        "weight",
    ),
    (json.dumps({"prompt": "q", "completion": 3}).encode(), "invalid_message", "completion"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}, A]}).encode(), "unknown_role", "'robot'"),
    (json.dumps({"messages": [{"role": ["user"], "content": "x"}, A]}).encode(), "invalid_message", "an array"),
    (json.dumps({"messages": [{"role": "user", "content": "  \n"}, A]}).encode(), "empty_content", "message 1 (user)"),
    (json.dumps({"prompt": "q", "completion": ""}).encode(), "empty_content", "message 2 (assistant)"),
    (json.dumps({"messages": [U, S, A]}).encode(), "system_not_first", "message 2"),
    (json.dumps({"messages": [S, A]}).encode(), "no_user_message", "no user message"),
    (json.dumps({"messages": [A, U]}).encode(), "no_user_message", "before the last assistant"),
    (json.dumps({"messages": [S, U]}).encode(), "no_assistant_message", "no assistant"),
    (json.dumps({"messages": [U, U, A]}).encode(), "consecutive_roles", "messages 1 and 2 are both user"),
    (json.dumps({"messages": [U, A, A]}).encode(), "consecutive_roles", "both assistant"),
    (json.dumps({"messages": [U]}).encode(), "too_few_messages", "1 message"),
    (b'{"messages": "\\ud800"}', "invalid_utf8", "surrogate"),
]


@pytest.mark.parametrize(
    ("line", "reason", "fragment"), BAD_LINES, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(BAD_LINES)]
)
def test_each_bad_line_is_rejected_with_its_code_line_and_detail(line, reason, fragment):
    good = conv("first", "kept")
    result = run(jsonl(good, line, conv("third", "kept too")))
    assert result.report["rejected"] == 1
    (rejection,) = result.rejected
    assert rejection["line"] == 2
    assert rejection["reason"] == reason
    assert fragment in rejection["detail"]
    assert rejection["raw"] == line.decode("utf-8", errors="replace")
    assert result.report["reasons"] == {reason: 1}
    assert_invariant(result.report)


def test_every_documented_reason_code_is_exercised():
    exercised = {reason for _, reason, _ in BAD_LINES} | {"line_too_long", "duplicate"}
    assert exercised == set(REASONS)


def test_line_too_long_keeps_only_a_head_of_the_raw_line():
    long_line = json.dumps(conv("x" * 5000, "y")).encode()
    result = run(jsonl(conv(), long_line, conv("b", "c")), max_line_bytes=1024)
    (rejection,) = result.rejected
    assert rejection["reason"] == "line_too_long"
    assert rejection["line"] == 2
    assert str(len(long_line)) in rejection["detail"] and "1024" in rejection["detail"]
    assert rejection["raw_bytes"] == len(long_line)
    assert len(rejection["raw"]) <= 4096
    assert_invariant(result.report)


def test_duplicate_names_the_first_line_and_keeps_it():
    result = run(jsonl(conv("a", "b"), conv("c", "d"), {"messages": conv("a", "b")["messages"], "prompt_id": "other"}))
    assert result.report["reasons"] == {"duplicate": 1}
    assert result.rejected[0]["line"] == 3
    assert result.rejected[0]["detail"] == "same conversation as line 1"
    assert result.report["train"] + result.report["test"] == 2


def test_duplicates_compare_normalised_conversations_not_bytes():
    a = b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    b = b'{ "messages":[{"content":"a","role":"user"},{"content":"b","role":"assistant","extra":1}] , "x": 2}'
    result = run(jsonl(a, b))
    assert result.report["reasons"] == {"duplicate": 1}


def test_raw_is_cut_to_a_few_kb():
    line = b'{"messages": "' + b"z" * 20000 + b'"}'
    result = run(jsonl(line))
    rejection = result.rejected[0]
    assert len(rejection["raw"]) == 2048
    assert rejection["raw_bytes"] == len(line)


def test_the_three_shapes_normalise_to_ultrachat_rows():
    openai = {
        "messages": [S, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "weight": 1}]
    }
    ultra = {"prompt": "P", "prompt_id": "abc", "messages": [{"role": "user", "content": "P"}, A]}
    pc = {"prompt": "2+2?", "completion": "4"}
    result = run(jsonl(openai, ultra, pc), test_percent=0)
    assert result.report["formats"] == {"openai_chat": 1, "ultrachat": 1, "prompt_completion": 1}
    assert result.report["format"] == "mixed"
    rows = result.train
    assert [list(row) for row in rows] == [["prompt", "prompt_id", "messages"]] * 3
    assert rows[0]["prompt"] == "Hi" and len(rows[0]["prompt_id"]) == 32
    assert rows[0]["messages"][2] == {"role": "assistant", "content": "Hello!", "weight": 1}
    assert rows[1]["prompt"] == "P" and rows[1]["prompt_id"] == "abc"
    assert rows[2]["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def test_prompt_id_is_a_stable_hash_of_the_conversation():
    first = run(jsonl(conv("same", "conversation")), test_percent=0).train[0]["prompt_id"]
    again = run(jsonl({"junk": 1}, conv("same", "conversation")), test_percent=0).train[0]["prompt_id"]
    assert first == again


def test_trailing_user_message_and_unknown_keys_are_dropped_with_warnings():
    row = {
        "messages": [U, {"role": "assistant", "content": "a", "mood": "happy"}, {"role": "user", "content": "bye"}],
        "source": "crm",
    }
    result = run(jsonl(row), test_percent=0)
    assert result.report["warnings"] == {
        "trailing_messages_dropped": 1,
        "unknown_keys_dropped": 1,
        "unknown_message_keys_dropped": 1,
    }
    assert result.train[0]["messages"] == [U, A]
    assert result.report["rejected"] == 0


def test_tools_and_tool_calls_are_kept():
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    tool = {"role": "tool", "content": "42", "tool_call_id": "c1"}
    row = {"messages": [U, call, tool, {"role": "assistant", "content": "It is 42."}], "tools": [{"type": "function"}]}
    result = run(jsonl(row), test_percent=0)
    kept = result.train[0]
    assert kept["tools"] == [{"type": "function"}]
    assert kept["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]}
    assert kept["messages"][2]["tool_call_id"] == "c1"


def test_bad_prompt_fields_are_replaced_with_a_warning():
    row = {"prompt": 5, "prompt_id": "", "messages": [U, A]}
    result = run(jsonl(row), test_percent=0)
    assert result.train[0]["prompt"] == "q"
    assert result.report["warnings"] == {"prompt_replaced": 1}  # counted per line
