"""The common line, checked in native code: typed decoding (msgspec) of a clean chat line, or ``None``.

Why: nearly every line of a real dataset is a plain conversation (``messages`` of role/content pairs, maybe
``prompt``/``prompt_id``) that passes every rule with no warning. Decoding it straight into typed structs validates
its shape, its roles, its string types, its UTF-8 and its JSON syntax in C and gives the messages in canonical key
order, which is about twice as fast as building dicts and walking them in Python. Anything else (a bad line, a
warning, tools, extra keys, odd prompt fields) returns ``None`` and goes the full way through ``rules``, which
alone decides reason codes, details and warnings; so the output is the same byte for byte whichever way a line
went (tests/unit/test_chatdata_golden.py and the differential test hold both ways to that).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from shared.chatdata.rules import OPENAI_CHAT, ULTRACHAT


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: list[_Message]
    prompt: str | UnsetType | None = UNSET  # UNSET (absent) and None (null) differ only in the shape name
    prompt_id: str | UnsetType | None = UNSET


# A clean line, as ``(messages_json, prompt, prompt_id, shape, chars, count)`` (a plain tuple: built per line):
# messages_json: compact JSON of the normalised messages (the dedup/split key), in the caller's buffer;
# prompt: the given prompt, or the first user message's content (as the full check derives it);
# prompt_id: the given one, or None (derived from the digest); shape: OPENAI_CHAT or ULTRACHAT;
# chars: content characters over all messages (the token estimate); count: messages.
CleanLine = tuple[bytearray, str, str | None, str, int, int]


# One decoder and one encoder serve every thread: msgspec holds the GIL for a whole call and keeps no state
# between calls; the buffer the messages are encoded into is the caller's (one per preparation).
_decode = msgspec.json.Decoder(_Line).decode
_encode_into = msgspec.json.Encoder().encode_into


def clean_line(raw: bytes | memoryview, scratch: bytearray) -> CleanLine | None:
    """``raw`` decoded and checked when it is a clean chat line that the full check would keep unchanged and
    without a warning; ``None`` for anything else (the caller then runs ``rules.decode_line`` and ``rules.check``).

    The messages JSON is encoded into ``scratch`` (and ``messages_json`` is that buffer): reusing one buffer per
    preparation saves an allocation and a copy per line; it holds the line's JSON until the next call.
    """
    try:
        line = _decode(raw)
    except msgspec.DecodeError:  # also ValidationError: a type, a role or a key the fast way does not take
        return None
    messages = line.messages
    previous = ""
    first_user: str | None = None
    chars = 0
    for message in messages:
        role = message.role
        content = message.content
        if not content or content.isspace():
            return None
        if role == "user":
            if previous == "user":
                return None
            if first_user is None:
                first_user = content
        elif role == "assistant":
            if previous == "assistant":
                return None
        elif role == "system" and previous:
            return None
        previous = role
        chars += len(content)
    # the last message is an assistant's (no trailing messages dropped) and a user spoke: the conversation is whole
    if previous != "assistant" or first_user is None:
        return None
    prompt, prompt_id = line.prompt, line.prompt_id
    if prompt == "" or prompt_id == "":
        return None  # replaced with a warning: the full check says so
    shape = OPENAI_CHAT if prompt is UNSET and prompt_id is UNSET else ULTRACHAT
    _encode_into(messages, scratch)
    return (
        scratch,
        first_user if prompt is UNSET or prompt is None else prompt,
        None if prompt_id is UNSET else prompt_id,
        shape,
        chars,
        len(messages),
    )
