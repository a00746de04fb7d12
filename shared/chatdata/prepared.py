"""Reading rows back from prepared ``train.jsonl`` / ``test.jsonl``: their conversation digest, without a parse.

Why: a model's corpus merges many prepared datasets, deduplicated and split by the same digest preparation used
(``conversation_digest``: XXH3-128 of the compact messages JSON, plus tools). Preparation wrote every row itself
as ``{"prompt":…,"prompt_id":…,"messages":<messages JSON>[,"tools":<tools JSON>]}``, so the messages JSON is a
slice of the line: hashing that slice gives the very digest preparation computed, at the cost of a ``find``
instead of a JSON parse. Rows with tools (rare) are parsed and re-serialised, which orjson makes byte-identical.
"""

from __future__ import annotations

import orjson

from shared.chatdata.prepare import conversation_digest
from shared.errors import BadInput

MESSAGES_KEY = b',"messages":'
TOOLS_KEY = b'"tools":'


class PreparedRowError(BadInput, ValueError):
    """A line that preparation cannot have written (the file was edited or is not a prepared split)."""

    code = "invalid_prepared_row"


def prepared_row_digest(line: bytes) -> bytes:
    """The 16-byte conversation digest of one prepared row (a line without its newline).

    The fast path is exact: inside a JSON string every ``"`` is escaped, so ``,"messages":`` with a bare quote is
    the top-level key (prompt and prompt_id, the only keys before it, are strings); without any ``"tools":`` in the
    line the messages JSON runs to the closing brace.
    """
    start = line.find(MESSAGES_KEY)
    if start < 0 or not line.endswith(b"}"):
        raise PreparedRowError('not a prepared row: no top-level "messages" key')
    start += len(MESSAGES_KEY)
    if line.find(TOOLS_KEY, start) < 0:
        return conversation_digest(line[start:-1])
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise PreparedRowError(f"not a prepared row: {exc}") from None
    tools = row.get("tools")
    return conversation_digest(orjson.dumps(row["messages"]), None if tools is None else orjson.dumps(tools))


__all__ = ["PreparedRowError", "prepared_row_digest"]
