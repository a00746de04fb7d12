"""Statistics for the report: token estimates, messages per example, and exact percentiles in bounded memory.

Token counts are *estimated*, not tokenized: no tokenizer is downloaded, and the base model (hence its tokenizer)
is a setting. The estimate is OpenAI's rule of thumb for English, about 4 characters per token (of all content), plus 4
tokens per message for the chat template's role markers and 2 per conversation: good to ~±25% for English prose, low for
code and for languages such as Chinese or Japanese (about one token per character there).
Percentiles are exact: counts are kept per distinct value (a ``Counter``), whose size is bounded by the longest
line allowed, not by the number of lines.
"""

from __future__ import annotations

from collections import Counter

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_CONVERSATION = 2
TOKEN_ESTIMATE_METHOD = (
    f"estimate, no tokenizer: ceil(content characters / {CHARS_PER_TOKEN}) + {TOKENS_PER_MESSAGE} per message "
    f"+ {TOKENS_PER_CONVERSATION}"
)


def estimate_tokens(chars: int, messages: int) -> int:
    """Estimated tokens of a conversation from its content characters and message count."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * messages + TOKENS_PER_CONVERSATION


def percentiles(counts: Counter[int], points: tuple[int, ...] = (5, 50, 95)) -> dict[str, int]:
    """Nearest-rank percentiles of a value → count histogram, plus min and max; zeros when empty."""
    total = sum(counts.values())
    out = {f"p{p}": 0 for p in points}
    if not total:
        return {"min": 0, **out, "max": 0}
    values = sorted(counts)
    targets = [(f"p{p}", max(1, -(-p * total // 100))) for p in points]  # ceil(p% of n), 1-based rank
    seen = 0
    index = 0
    for value in values:
        seen += counts[value]
        while index < len(targets) and seen >= targets[index][1]:
            out[targets[index][0]] = value
            index += 1
    return {"min": values[0], **out, "max": values[-1]}


def mean(counts: Counter[int]) -> float:
    total = sum(counts.values())
    return round(sum(value * n for value, n in counts.items()) / total, 1) if total else 0.0
