"""How an answer is scored against its reference, and how two models' scores are compared.

Why these metrics: a fine-tuned chat model is judged on the answers its owners wrote, so both are overlap
measures against that reference. ROUGE-L F1 (longest common subsequence of words, from ``rouge-score``, the
library the ROUGE literature uses) rewards the right words in the right order; token F1 (the SQuAD measure:
bag-of-words overlap) forgives order. Both see the same words: lower-cased Unicode word characters, with
Chinese and Japanese characters one token each (``rouge-score``'s own tokenizer keeps only ``a-z0-9``, so
any other script would score zero).

A request that failed (non-2xx, timeout, empty answer) scores 0 on both: the score is what users get.
Latency percentiles are over the requests that were answered.

The comparison is paired: both models answer the same conversations, so the uncertainty of the mean
difference comes from resampling conversations (bootstrap, fixed seed, so an evaluation is reproducible).

``rouge-score`` imports ``nltk`` (about a second): imported on first use, never at the function app's start.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "paired_bootstrap",
    "percentile",
    "rouge_l",
    "summarise",
    "token_f1",
    "tokens",
]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601

# Ideographs and kana are written without spaces: each character is a word of its own.
_SPACELESS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_SPACELESS}]|[^\W_{_SPACELESS}]+")


def tokens(text: str) -> list[str]:
    """The words two texts are compared by (lower case, punctuation dropped, any script)."""
    return _WORD.findall(text.lower())


class _Tokenizer:
    """``rouge-score`` takes any object with ``tokenize(text)``."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(reference: str, answer: str) -> float:
    """ROUGE-L F1 of ``answer`` against ``reference`` (0 when either has no words)."""
    if not answer.strip():
        return 0.0
    return float(_scorer().score(reference, answer)["rougeL"].fmeasure)


def token_f1(reference: str, answer: str) -> float:
    """F1 of the words the two texts share, counted with multiplicity (order ignored)."""
    ref, got = Counter(tokens(reference)), Counter(tokens(answer))
    if not ref or not got:
        return 0.0
    common = sum((ref & got).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One model's overall numbers from its per-example results (``ok``, ``rouge_l``, ``token_f1``, ``latency_ms``)."""
    answered = [r for r in results if r.get("ok")]
    latencies = [float(r["latency_ms"]) for r in answered if r.get("latency_ms") is not None]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "examples": len(results),
        "errors": len(results) - len(answered),
        "rouge_l": _round(_mean([float(r.get("rouge_l") or 0.0) for r in results])),
        "token_f1": _round(_mean([float(r.get("token_f1") or 0.0) for r in results])),
        "error_rate": _round((len(results) - len(answered)) / len(results)) if results else None,
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
    }


def paired_bootstrap(
    champion: Sequence[float],
    challenger: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Mean of ``challenger - champion`` per example and its 95% bootstrap interval (percentile method).

    Positive means the challenger scores higher. The same seed and inputs always give the same interval."""
    if len(champion) != len(challenger):
        raise ValueError(f"paired scores differ in length: {len(champion)} vs {len(challenger)}")
    if not champion:
        return {"rouge_l": None, "ci95": None}
    import numpy as np

    differences = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"rouge_l": round(float(differences.mean()), 4), "ci95": [round(float(low), 4), round(float(high), 4)]}
