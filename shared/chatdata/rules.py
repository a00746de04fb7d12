"""One JSONL line → a normalised conversation, or a rejection with a stable reason code and a human detail.

The codes are an API: users grep for them, the report counts them, and the README lists them. Never rename one.
Three line shapes are accepted and detected per line: OpenAI chat (``messages`` [+ ``tools``]), ultrachat_200k
(``prompt``, ``prompt_id``, ``messages``) and prompt/completion (a user + assistant pair).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson

from shared.chatdata.reader import UTF8_BOM
from shared.errors import BadInput

# -- reason codes (per line) --------------------------------------------------------------------------------
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_MESSAGES = "missing_messages"
INVALID_MESSAGE = "invalid_message"
UNKNOWN_ROLE = "unknown_role"
EMPTY_CONTENT = "empty_content"
SYSTEM_NOT_FIRST = "system_not_first"
NO_USER_MESSAGE = "no_user_message"
NO_ASSISTANT_MESSAGE = "no_assistant_message"
CONSECUTIVE_ROLES = "consecutive_roles"
TOO_FEW_MESSAGES = "too_few_messages"
LINE_TOO_LONG = "line_too_long"
DUPLICATE = "duplicate"

REASONS: dict[str, str] = {
    INVALID_UTF8: "the line is not valid UTF-8 (or holds an unpaired surrogate escape)",
    INVALID_JSON: "the line is not valid JSON",
    NOT_AN_OBJECT: "the line is JSON but not an object",
    MISSING_MESSAGES: "no messages: the key is absent, not a list, or the list is empty",
    INVALID_MESSAGE: "a message is not an object, or its role/content is missing or not a string",
    UNKNOWN_ROLE: "a role other than system, user, assistant, tool",
    EMPTY_CONTENT: "a message's content is empty or only whitespace",
    SYSTEM_NOT_FIRST: "a system message after the first position",
    NO_USER_MESSAGE: "the conversation has no user message",
    NO_ASSISTANT_MESSAGE: "the conversation has no assistant message (nothing to learn)",
    CONSECUTIVE_ROLES: "two user or two assistant messages in a row",
    TOO_FEW_MESSAGES: "fewer than two messages",
    LINE_TOO_LONG: "the line is longer than MAX_LINE_BYTES",
    DUPLICATE: "the same normalised conversation as an earlier line (the first one is kept)",
}

# -- warning codes (the line is kept) -------------------------------------------------------------------------
TRAILING_MESSAGES_DROPPED = "trailing_messages_dropped"
UNKNOWN_KEYS_DROPPED = "unknown_keys_dropped"
UNKNOWN_MESSAGE_KEYS_DROPPED = "unknown_message_keys_dropped"
PROMPT_REPLACED = "prompt_replaced"

WARNINGS: dict[str, str] = {
    TRAILING_MESSAGES_DROPPED: "messages after the last assistant message were dropped (they train nothing)",
    UNKNOWN_KEYS_DROPPED: "top-level keys other than messages/tools/prompt/prompt_id were dropped",
    UNKNOWN_MESSAGE_KEYS_DROPPED: "message keys other than role/content/name/weight/tool_calls/tool_call_id "
    "were dropped",
    PROMPT_REPLACED: "prompt or prompt_id was not a non-empty string and was derived from the conversation",
}

OPENAI_CHAT = "openai_chat"
ULTRACHAT = "ultrachat"
PROMPT_COMPLETION = "prompt_completion"

ROLES = ("system", "user", "assistant", "tool")
_ROLES = frozenset(ROLES)
_OPTIONAL_MESSAGE_KEYS = ("name", "weight", "tool_calls", "tool_call_id")
_MESSAGE_KEYS = frozenset(("role", "content", *_OPTIONAL_MESSAGE_KEYS))
_CHAT_KEYS = frozenset(("messages", "tools", "prompt", "prompt_id"))
_PC_KEYS = frozenset(("prompt", "completion"))
DETAIL_CHARS = 200


class LineError(BadInput, ValueError):
    """A rejected line: ``reason`` is one of the codes above, ``detail`` says what and where."""

    code = "invalid_line"

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Conversation(msgspec.Struct, gc=False):
    """A valid line, normalised. ``messages`` hold only known keys, in a canonical order."""

    messages: list[dict[str, Any]]
    prompt: str | None
    prompt_id: str | None
    tools: Any
    shape: str
    warnings: list[str] = msgspec.field(default_factory=list)
    chars: int = 0  # characters of content over all messages (for the token estimate)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def decode_line(raw: bytes) -> Any:
    """bytes → JSON value, or ``LineError`` (invalid_utf8 / invalid_json) naming the byte or column.

    orjson parses (and validates UTF-8) about 4x faster than the standard library; the error is then
    classified by decoding the line only when it failed.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if raw.startswith(UTF8_BOM):  # a BOM inside the file: files concatenated with ``cat``
            return decode_line(raw[len(UTF8_BOM) :])
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = raw[bad.start : bad.start + 1].hex()
            raise LineError(INVALID_UTF8, f"byte 0x{byte} at byte {bad.start + 1} is not valid UTF-8") from None
        if "surrogate" in exc.msg:
            raise LineError(INVALID_UTF8, f"{exc.msg} at column {exc.colno}") from None
        raise LineError(INVALID_JSON, f"{exc.msg} at column {exc.colno}") from None


def check(value: Any) -> Conversation:
    """Validate one decoded line and normalise it; raise ``LineError`` with the first problem found."""
    if not isinstance(value, dict):
        raise LineError(NOT_AN_OBJECT, f"expected a JSON object, got {_json_type(value)}")
    warnings: list[str] = []
    if "messages" in value:
        shape = ULTRACHAT if ("prompt" in value or "prompt_id" in value) else OPENAI_CHAT
        raw_messages = value["messages"]
        if not isinstance(raw_messages, list) or not raw_messages:
            what = "an empty list" if isinstance(raw_messages, list) else _json_type(raw_messages)
            raise LineError(MISSING_MESSAGES, f'"messages" must be a non-empty list, got {what}')
        if not _CHAT_KEYS.issuperset(value):
            warnings.append(UNKNOWN_KEYS_DROPPED)
        messages, chars = _messages(raw_messages, warnings)
        prompt, prompt_id = value.get("prompt"), value.get("prompt_id")
        tools = value.get("tools")
    elif "completion" in value:
        shape = PROMPT_COMPLETION
        prompt_text, completion = value.get("prompt"), value.get("completion")
        if not isinstance(prompt_text, str) or not isinstance(completion, str):
            raise LineError(
                INVALID_MESSAGE,
                'prompt/completion lines need "prompt" and "completion" strings, got '
                f"{_json_type(prompt_text)} and {_json_type(completion)}",
            )
        if not _PC_KEYS.issuperset(value):
            warnings.append(UNKNOWN_KEYS_DROPPED)
        messages, chars = _messages(
            [{"role": "user", "content": prompt_text}, {"role": "assistant", "content": completion}], warnings
        )
        prompt, prompt_id, tools = None, None, None
    else:
        keys = ", ".join(sorted(value)[:8]) or "none"
        raise LineError(MISSING_MESSAGES, f'no "messages" list (keys found: {keys})')
    if prompt is not None and not (isinstance(prompt, str) and prompt):
        prompt = None
        warnings.append(PROMPT_REPLACED)
    if prompt_id is not None and not (isinstance(prompt_id, str) and prompt_id):
        prompt_id = None
        if PROMPT_REPLACED not in warnings:
            warnings.append(PROMPT_REPLACED)
    return Conversation(messages, prompt, prompt_id, tools, shape, warnings, chars)


def _messages(raw: list[Any], warnings: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Check and normalise every message and the conversation's order rules in one pass (this is the hot loop
    of the whole preparation); returns the messages and their total content characters."""
    out: list[dict[str, Any]] = []
    append = out.append
    unknown = False
    chars = 0
    previous = ""
    last_assistant = -1
    has_user = False
    for index, message in enumerate(raw, 1):
        # fast path: exactly {"role", "content"} with a known role and non-blank text, nearly every message
        try:
            role = message["role"]
            content = message["content"]
            fast = len(message) == 2 and role in _ROLES and type(content) is str and not content.isspace()
        except (KeyError, TypeError):  # not an object, a key missing, an unhashable role: the full check says which
            fast = False
        if fast and content:
            clean: dict[str, Any] = {"role": role, "content": content}
        else:
            clean, extra = _message(index, message)
            unknown = unknown or extra
            role, content = clean["role"], clean["content"]
        if role == previous and (role == "user" or role == "assistant"):
            raise LineError(CONSECUTIVE_ROLES, f"messages {index - 1} and {index} are both {role} messages")
        if role == "assistant":
            last_assistant = index - 1
        elif role == "user":
            has_user = True
        elif role == "system" and index > 1:
            raise LineError(SYSTEM_NOT_FIRST, f"message {index} is a system message; only the first may be")
        previous = role
        chars += len(content)
        append(clean)
    if unknown:
        warnings.append(UNKNOWN_MESSAGE_KEYS_DROPPED)
    if len(out) < 2:
        raise LineError(TOO_FEW_MESSAGES, f"{len(out)} message; a conversation needs at least two")
    if not has_user:
        raise LineError(NO_USER_MESSAGE, "the conversation has no user message")
    if last_assistant < 0:
        raise LineError(NO_ASSISTANT_MESSAGE, "the conversation has no assistant message to learn from")
    if last_assistant < len(out) - 1:
        warnings.append(TRAILING_MESSAGES_DROPPED)
        out = out[: last_assistant + 1]
        if len(out) < 2 or not any(m["role"] == "user" for m in out):
            raise LineError(NO_USER_MESSAGE, "no user message before the last assistant message")
        chars = sum(len(m["content"]) for m in out)
    return out, chars


def _message(index: int, message: Any) -> tuple[dict[str, Any], bool]:
    """Check one message in full; returns it normalised and whether it had keys that were dropped."""
    if not isinstance(message, dict):
        raise LineError(INVALID_MESSAGE, f"message {index} is {_json_type(message)}, not an object")
    role = message.get("role")
    content = message.get("content")
    if not isinstance(role, str):
        what = "missing" if role is None else f"{_json_type(role)}, not a string"
        raise LineError(INVALID_MESSAGE, f'message {index}: "role" is {what}')
    if role not in _ROLES:
        raise LineError(UNKNOWN_ROLE, f"message {index}: role {_short(role)!r} is not one of {', '.join(ROLES)}")
    tool_call = role == "assistant" and isinstance(message.get("tool_calls"), list) and bool(message["tool_calls"])
    if not isinstance(content, str):
        if not (tool_call and content is None):
            what = "missing" if content is None else f"{_json_type(content)}, not a string"
            raise LineError(INVALID_MESSAGE, f'message {index} ({role}): "content" is {what}')
        content = ""
    elif not tool_call and (not content or content.isspace()):
        raise LineError(EMPTY_CONTENT, f"message {index} ({role}) has empty content")
    clean: dict[str, Any] = {"role": role, "content": content}
    for key in _OPTIONAL_MESSAGE_KEYS:
        if key in message:
            clean[key] = message[key]
    weight = clean.get("weight", 1)
    if type(weight) not in (int, float) or weight not in (0, 1):
        raise LineError(INVALID_MESSAGE, f'message {index}: "weight" must be 0 or 1, got {_short(weight)}')
    return clean, not _MESSAGE_KEYS.issuperset(message)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
