"""The fast way (typed decoding of clean lines) against the full check, line by line: whenever the fast way takes a
line, the full check keeps it with no warning and gives the same messages JSON, prompt, prompt id, shape and
counts. Run over the golden edge lines and thousands of seeded random mutations of valid lines."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from shared.chatdata import rules
from shared.chatdata.rows import clean_line
from tests.unit.test_chatdata_golden import edge_lines

VALID = [
    {
        "messages": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! \u00e9 \U0001f680"},
        ]
    },
    {
        "prompt": "P",
        "prompt_id": "abc",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": 'say "x"\n'},
            {"role": "assistant", "content": "x\\y"},
            {"role": "tool", "content": "42"},
            {"role": "assistant", "content": "done"},
        ],
    },
    {"prompt_id": None, "messages": [{"role": "user", "content": "a\tb"}, {"role": "assistant", "content": "c"}]},
]
# bytes a mutation puts in: JSON syntax, escapes, whitespace, invalid and multi-byte UTF-8
INSERTS = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"\t", b"\x00", b"\x1f", b"\xff", b"\xc3", b"\xed"]
INSERTS += [b"\\u", b"\\ud800", b"\\u0041", b"null", b"1", b"role", b"user", b"assistant", b"system", b"\xef\xbb\xbf"]


def full_way(raw: bytes) -> tuple | None:
    """What the full check keeps, in the fast way's terms, or None when it rejects or warns."""
    try:
        conv = rules.check(rules.decode_line(raw))
    except rules.LineError:
        return None
    if conv.warnings or conv.tools is not None:
        return None
    prompt = conv.prompt or next(m["content"] for m in conv.messages if m["role"] == "user")
    return orjson.dumps(conv.messages), prompt, conv.prompt_id, conv.shape, conv.chars, len(conv.messages)


def mutants(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sources = [json.dumps(row, ensure_ascii=rng.random() < 0.5).encode() for row in VALID]
    sources += [orjson.dumps(row) for row in VALID]
    out = []
    for _ in range(count):
        line = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(line) + 1)
            kind = rng.random()
            if kind < 0.4:
                line[at:at] = rng.choice(INSERTS)
            elif kind < 0.7:
                del line[at : at + rng.randint(1, 4)]
            else:
                line[at : at + 1] = rng.choice(INSERTS)
        out.append(bytes(line))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_way_takes_only_what_the_full_check_keeps_unchanged(seed):
    lines = edge_lines() + mutants(3000, seed) + [orjson.dumps(row) for row in VALID]
    scratch = bytearray()
    taken = 0
    for raw in lines:
        fast = clean_line(raw, scratch)
        if fast is None:
            continue
        taken += 1
        fast = (bytes(fast[0]), *fast[1:])
        assert fast == full_way(raw), raw
    assert taken >= 3  # the valid lines at least


def test_the_fast_way_takes_the_common_shapes():
    scratch = bytearray()
    for row in VALID:
        assert clean_line(json.dumps(row).encode(), scratch) is not None, row
