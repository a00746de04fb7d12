"""Scores of one answer and of two models: ROUGE-L (rouge-score), token F1, percentiles, the paired bootstrap."""

from __future__ import annotations

import random

import pytest

from shared.evaluation import metrics


def test_rouge_l_is_the_library_lcs_f1_on_words() -> None:
    reference = "Your package is in transit and will be delivered within two business days."
    assert metrics.rouge_l(reference, reference) == pytest.approx(1.0)
    # LCS "your package will be delivered" = 5 words; reference 13 words, answer 7: F1 = 2PR/(P+R)
    answer = "Your package will surely be delivered soon."
    p, r = 5 / 7, 5 / 13
    assert metrics.rouge_l(reference, answer) == pytest.approx(2 * p * r / (p + r), abs=1e-9)
    assert metrics.rouge_l(reference, "") == 0.0
    assert metrics.rouge_l(reference, "Click forgot password on the login page.") < 0.2


def test_word_order_matters_to_rouge_l_not_to_token_f1() -> None:
    reference = "one two three four"
    shuffled = "four three two one"
    assert metrics.token_f1(reference, shuffled) == pytest.approx(1.0)
    assert metrics.rouge_l(reference, shuffled) == pytest.approx(0.25)


def test_tokens_ignore_case_and_punctuation_and_keep_every_script() -> None:
    assert metrics.tokens("Hello, WORLD! It's 5pm.") == ["hello", "world", "it", "s", "5pm"]
    assert metrics.tokens("Grüße aus Köln") == ["grüße", "aus", "köln"]
    assert metrics.tokens("荷物は明日届きます") == list("荷物は明日届きます")
    # rouge-score's own tokenizer would drop all of these and score 0; ours compares them
    assert metrics.rouge_l("Привет, как дела?", "привет как дела") == pytest.approx(1.0)
    assert metrics.rouge_l("荷物は明日届きます", "荷物は明後日届きます") > 0.8


def test_token_f1_counts_shared_words_with_multiplicity() -> None:
    assert metrics.token_f1("the cat the hat", "the the the") == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert metrics.token_f1("a b", "c d") == 0.0
    assert metrics.token_f1("a b", "") == 0.0
    assert metrics.token_f1("...", "a") == 0.0


def test_percentile_interpolates_like_numpy() -> None:
    import numpy as np

    values = [random.Random(3).uniform(1, 500) for _ in range(37)]
    for q in (0, 5, 50, 95, 100):
        assert metrics.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([7.0], 95) == 7.0


def test_summary_counts_failures_as_zero_and_times_only_answers() -> None:
    results = [
        {"ok": True, "rouge_l": 1.0, "token_f1": 1.0, "latency_ms": 100.0},
        {"ok": True, "rouge_l": 0.5, "token_f1": 0.6, "latency_ms": 300.0},
        {"ok": False, "rouge_l": 0.0, "token_f1": 0.0, "latency_ms": 5000.0},
        {"ok": False, "rouge_l": 0.0, "token_f1": 0.0, "latency_ms": None},
    ]
    summary = metrics.summarise(results)
    assert summary == {
        "examples": 4,
        "errors": 2,
        "rouge_l": 0.375,
        "token_f1": 0.4,
        "error_rate": 0.5,
        "p50_ms": 200.0,
        "p95_ms": 290.0,
    }
    empty = metrics.summarise([])
    assert empty["examples"] == 0 and empty["rouge_l"] is None and empty["error_rate"] is None


def test_paired_bootstrap_is_reproducible_and_brackets_the_mean() -> None:
    rng = random.Random(11)
    champion = [rng.uniform(0.5, 1.0) for _ in range(60)]
    challenger = [score - 0.2 + rng.uniform(-0.05, 0.05) for score in champion]
    first = metrics.paired_bootstrap(champion, challenger)
    assert first == metrics.paired_bootstrap(champion, challenger)  # fixed seed
    low, high = first["ci95"]
    assert low <= first["rouge_l"] <= high < 0
    assert first["rouge_l"] == pytest.approx(
        sum(b - a for a, b in zip(champion, challenger, strict=True)) / 60, abs=1e-4
    )
    # pairing: a constant shift has no uncertainty at all, however spread out the scores are
    shifted = metrics.paired_bootstrap(champion, [score + 0.1 for score in champion])
    assert shifted["ci95"][0] == pytest.approx(0.1, abs=1e-4) and shifted["ci95"][1] == pytest.approx(0.1, abs=1e-4)
    assert metrics.paired_bootstrap([], []) == {"rouge_l": None, "ci95": None}
    with pytest.raises(ValueError, match="differ in length"):
        metrics.paired_bootstrap([1.0], [])
