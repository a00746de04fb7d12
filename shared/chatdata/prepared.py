"""Reading rows back from prepared ``train.jsonl`` / ``test.jsonl``: their conversation digest, without a parse.

Why: a model's corpus merges many prepared datasets, deduplicated and split by the same digest preparation used
(``conversation_digest``: XXH3-128 of the compact messages JSON, plus tools). Preparation wrote every row itself
as ``{"prompt":…,"prompt_id":…,"messages":<messages JSON>[,"tools":<tools JSON>]}``, so the messages JSON is a
slice of the line: hashing that slice gives the very digest preparation computed, at the cost of two ``find``
calls instead of a JSON parse. Rows with tools (rare) are parsed and re-serialised, which orjson makes
byte-identical. Rows are addressed inside a larger buffer (``start``, ``end``) so a caller walking a multi-MB
chunk never copies a line to hash it.
"""

from __future__ import annotations

import orjson
from xxhash import xxh3_128_digest

from shared.chatdata.prepare import conversation_digest
from shared.errors import BadInput

PROMPT_KEY = b'{"prompt":'
MESSAGES_KEY = b',"messages":'
TOOLS_KEY = b'],"tools":'  # preparation writes tools right after the messages array
CLOSING_BRACE = 0x7D


class PreparedRowError(BadInput, ValueError):
    """A line that preparation cannot have written (the file was edited or is not a prepared split)."""

    code = "invalid_prepared_row"


def row_digest(buffer: bytes, start: int, end: int, tools: bool = True) -> bytes:
    """The 16-byte conversation digest of the prepared row ``buffer[start:end]`` (without its newline).

    The fast path is exact for what preparation writes: inside a JSON string every ``"`` is escaped, so
    ``,"messages":`` with a bare quote is the top-level key (prompt and prompt_id, the only keys before it, are
    strings). Tools, when a row has them, follow the messages array (``],"tools":``); without that sequence after
    the messages key, the messages JSON runs to the row's closing brace. Anything else (tools, a nested
    ``"tools"`` key, a row not written by preparation) is parsed: any JSON object with a ``messages`` list has a
    digest, the very one preparation gives it if the row is normalised. ``tools=False`` skips looking for tools
    (a scan of the row): for a file whose preparation report counts no ``rows_with_tools``.
    """
    begin = buffer.find(MESSAGES_KEY, start, end) if buffer.startswith(PROMPT_KEY, start) else -1
    if begin >= 0 and buffer[end - 1] == CLOSING_BRACE:
        begin += len(MESSAGES_KEY)
        if not tools or buffer.find(TOOLS_KEY, begin, end) < 0:
            return xxh3_128_digest(memoryview(buffer)[begin : end - 1])  # conversation_digest, without a copy
    try:
        row = orjson.loads(buffer[start:end])
    except orjson.JSONDecodeError as exc:
        raise PreparedRowError(f"not a prepared row: {exc}") from None
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise PreparedRowError('not a prepared row: no "messages" list')
    tools = row.get("tools")
    return conversation_digest(orjson.dumps(row["messages"]), None if tools is None else orjson.dumps(tools))


def prepared_row_digest(line: bytes) -> bytes:
    """``row_digest`` of one whole line."""
    return row_digest(line, 0, len(line))


__all__ = ["PreparedRowError", "prepared_row_digest", "row_digest"]
