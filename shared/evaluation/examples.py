"""Which held-out conversations an evaluation asks, and what each one asks.

Why cut before the last assistant message: that message is what the model's owners wanted said there, so it
is the reference, and everything before it is exactly what a client would send (ending with the user's turn).
A conversation that cannot be asked that way is skipped with a reason (counted, never silently).

Why the smallest ids: an example's id is a hash of its whole conversation, so taking the ``limit`` smallest is
a uniform, deterministic sample that needs one pass and ``limit`` rows of memory, and it stays stable as a
held-out split grows (a row once chosen is only displaced by a newcomer with a smaller hash). The same
conversation has the same id in every file, which is how rows new in a run are told apart.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from xxhash import xxh3_128_hexdigest

__all__ = ["Example", "Selection", "conversation_id", "cut_conversation", "rows_from_lines", "select"]

ASKABLE_ROLES = ("system", "user", "assistant")  # what the chat-completion scoring contract accepts

# Reasons a held-out conversation is not asked.
NO_ASSISTANT = "no_assistant_message"
NOT_AFTER_USER = "reference_not_after_user"
UNSUPPORTED_ROLE = "unsupported_role"
USES_TOOLS = "uses_tools"
EMPTY_REFERENCE = "empty_reference"
NOT_A_CONVERSATION = "not_a_conversation"


@dataclass(frozen=True)
class Example:
    """One question: ``messages`` up to the user's last turn before ``reference`` (the owner's answer)."""

    id: str
    messages: list[dict[str, str]]
    reference: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messages": self.messages, "reference": self.reference}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(id=str(data["id"]), messages=list(data["messages"]), reference=str(data["reference"]))


def conversation_id(messages: Any) -> str:
    """Hash of the whole conversation (roles and contents, in order): the same conversation, the same id."""
    canonical = [[str(m.get("role")), str(m.get("content"))] for m in messages if isinstance(m, dict)]
    return xxh3_128_hexdigest(orjson.dumps(canonical))


def cut_conversation(row: Any) -> Example | str:
    """The example a prepared row makes, or the reason it makes none."""
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return NOT_A_CONVERSATION
    if row.get("tools"):
        return USES_TOOLS  # the chat-completion scoring contract takes no tool definitions
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        return NO_ASSISTANT
    prompt = messages[:last]
    if any(m.get("role") not in ASKABLE_ROLES or not isinstance(m.get("content"), str) for m in prompt):
        return UNSUPPORTED_ROLE
    if not prompt or prompt[-1].get("role") != "user":
        return NOT_AFTER_USER
    reference = messages[last].get("content")
    if not isinstance(reference, str) or not reference.strip():
        return EMPTY_REFERENCE
    return Example(
        id=conversation_id(messages[: last + 1]),
        messages=[{"role": str(m["role"]), "content": str(m["content"])} for m in prompt],
        reference=reference,
    )


def rows_from_lines(lines: Iterable[bytes]) -> Iterable[Any]:
    """Parsed JSON rows of a prepared split; a line that does not parse becomes None (counted as skipped)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            yield None


@dataclass
class Selection:
    """The chosen examples (ascending id) and what the pass saw."""

    examples: list[Example] = field(default_factory=list)
    ids: set[str] | None = None  # every askable id seen, when asked for (``collect_ids``)
    rows: int = 0
    askable: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {"rows": self.rows, "askable": self.askable, "chosen": len(self.examples), "skipped": dict(self.skipped)}


class Selector:
    """Feed rows one at a time (``add``); ``result`` keeps the ``limit`` smallest ids not in ``exclude``."""

    def __init__(self, limit: int, exclude: frozenset[str] | set[str] = frozenset(), *, collect_ids: bool = False):
        self.limit = limit
        self.exclude = exclude
        self._heap: list[tuple[_Reverse, Example]] = []  # the largest kept id on top
        self._seen: set[str] = set()
        self.selection = Selection(ids=set() if collect_ids else None)

    def add(self, row: Any) -> None:
        self.selection.rows += 1
        example = cut_conversation(row) if row is not None else NOT_A_CONVERSATION
        if isinstance(example, str):
            self.selection.skipped[example] += 1
            return
        self.selection.askable += 1
        if self.selection.ids is not None:
            self.selection.ids.add(example.id)
        if example.id in self.exclude or example.id in self._seen or self.limit <= 0:
            return
        key = _Reverse(example.id)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, (key, example))
            self._seen.add(example.id)
        elif key > self._heap[0][0]:  # smaller id than the largest kept one
            _, dropped = heapq.heapreplace(self._heap, (key, example))
            self._seen.discard(dropped.id)
            self._seen.add(example.id)

    def result(self) -> Selection:
        self.selection.examples = sorted((example for _, example in self._heap), key=lambda e: e.id)
        return self.selection


class _Reverse:
    """Orders strings backwards, so Python's min-heap keeps the largest id on top."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __lt__(self, other: _Reverse) -> bool:
        return self.value > other.value

    def __gt__(self, other: _Reverse) -> bool:
        return self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def select(rows: Iterable[Any], limit: int, exclude: frozenset[str] | set[str] = frozenset()) -> Selection:
    """Up to ``limit`` examples from ``rows``, the smallest ids first, skipping ids in ``exclude``."""
    selector = Selector(limit, exclude)
    for row in rows:
        selector.add(row)
    return selector.result()
