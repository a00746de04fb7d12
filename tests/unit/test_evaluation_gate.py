"""The promotion decision from per-example results, under each policy, with the numbers in the reason."""

from __future__ import annotations

import pytest

from shared.evaluation import gate
from shared.evaluation.runner import CHALLENGER, CHAMPION, Task, pending_tasks


def result(score: float, ok: bool = True, latency: float = 100.0) -> dict:
    return {
        "ok": ok,
        "answer": "an answer" if ok else "",
        "error": "" if ok else "HTTP 500: boom",
        "rouge_l": score if ok else 0.0,
        "token_f1": score if ok else 0.0,
        "latency_ms": latency if ok else None,
    }


def record(champion: list[dict] | None, challenger: list[dict], new: list[dict] = ()) -> dict:
    examples = []
    for index, answer in enumerate(challenger):
        examples.append(
            {
                "id": f"{index:04x}",
                "set": "gate",
                "messages": [{"role": "user", "content": f"question {index}"}],
                "reference": f"reference {index}",
                CHAMPION: champion[index] if champion is not None else None,
                CHALLENGER: answer,
            }
        )
    for index, answer in enumerate(new):
        examples.append(
            {
                "id": f"n{index:03x}",
                "set": "new",
                "messages": [{"role": "user", "content": "new question"}],
                "reference": "r",
                CHAMPION: None,
                CHALLENGER: answer,
            }
        )
    return {
        "policy": "gate",
        CHAMPION: {"version": "1", "run_id": "m-1", "deployment": "v1"} if champion is not None else None,
        CHALLENGER: {"version": "2", "run_id": "m-2", "deployment": "v2"},
        "examples": examples,
    }


LIMITS = gate.Thresholds(max_regression=0.02, max_error_increase=0.02, min_score=0.0)


def decide(rec: dict, policy: str = "gate", limits: gate.Thresholds = LIMITS) -> tuple[str, str]:
    return gate.decide(policy, gate.summarise_record(rec), limits)


def test_a_clearly_worse_challenger_is_held_with_the_numbers() -> None:
    rec = record([result(0.9)] * 10, [result(0.4)] * 10)
    decision, reason = decide(rec)
    assert decision == gate.HELD
    assert "mean ROUGE-L 0.400 vs 0.900 for the champion (version 1) over 10 conversations" in reason
    assert "difference -0.500, 95% CI [-0.500, -0.500]" in reason
    assert "PROMOTION_MAX_REGRESSION 0.02" in reason


def test_within_tolerance_promotes_and_just_beyond_holds() -> None:
    champion = [result(0.80)] * 4
    assert decide(record(champion, [result(0.78)] * 4))[0] == gate.PROMOTED  # exactly the tolerance
    assert decide(record(champion, [result(0.7799)] * 4))[0] == gate.HELD
    assert decide(record(champion, [result(0.95)] * 4))[0] == gate.PROMOTED
    loose = gate.Thresholds(max_regression=0.5)
    assert decide(record(champion, [result(0.4)] * 4), limits=loose)[0] == gate.PROMOTED


def test_a_challenger_failing_requests_is_held_on_its_error_rate() -> None:
    rec = record([result(0.5)] * 4, [result(0.0, ok=False)] * 4)
    decision, reason = decide(rec)
    assert decision == gate.HELD
    assert "error rate 100.0% vs 0.0% for the champion" in reason and "PROMOTION_MAX_ERROR_INCREASE 2.0%" in reason
    summary = gate.summarise_record(rec)
    assert summary[CHALLENGER]["error_rate"] == 1.0 and summary[CHALLENGER]["errors"] == 4
    assert summary[CHALLENGER]["p50_ms"] is None
    # a champion failing as much is no reason to hold the challenger on errors
    both = record([result(0.0, ok=False)] * 4, [result(0.0, ok=False)] * 4)
    assert decide(both)[0] == gate.PROMOTED


def test_without_a_champion_the_minimum_score_and_the_error_rate_decide() -> None:
    good = record(None, [result(0.6)] * 5)
    decision, reason = decide(good)
    assert decision == gate.PROMOTED and reason.startswith("no champion")
    assert decide(good, limits=gate.Thresholds(min_score=0.7))[0] == gate.HELD
    failing = record(None, [result(0.0, ok=False)] * 5)
    decision, reason = decide(failing)
    assert decision == gate.HELD and "100.0% of 5 requests failed" in reason
    assert gate.summarise_record(good)["difference"] is None


def test_policies_always_and_manual_record_what_the_gate_would_say() -> None:
    worse = record([result(0.9)] * 3, [result(0.1)] * 3)
    decision, reason = decide(worse, "always")
    assert decision == gate.PROMOTED and reason.startswith("PROMOTION_POLICY=always") and "0.100 vs 0.900" in reason
    decision, reason = decide(worse, "manual")
    assert decision == gate.AWAITING_APPROVAL and "would not pass" in reason
    decision, reason = decide(record([result(0.9)] * 3, [result(0.9)] * 3), "manual")
    assert decision == gate.AWAITING_APPROVAL and "would pass" in reason


def test_nothing_to_ask_skips_the_gate_and_says_so() -> None:
    decision, reason = decide(record([], []))
    assert decision == gate.PROMOTED and "gate skipped" in reason


def test_view_keeps_the_contract_shape_new_rows_and_three_telling_samples() -> None:
    champion = [result(0.9), result(0.9), result(0.9), result(0.9), result(0.5)]
    challenger = [result(0.9), result(0.2), result(0.9), result(0.0, ok=False), result(0.6)]
    rec = record(champion, challenger, new=[result(0.3), result(0.5)])
    rec["started_at"], rec["finished_at"] = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
    summary = gate.summarise_record(rec)
    decision, reason = gate.decide("gate", summary, LIMITS)
    view = gate.evaluation_view(rec, summary, decision, reason, "evals/m/m-2.json")
    assert view["examples"] == 5 and view["decision"] == gate.HELD and view["reason"] == reason
    for side in (CHAMPION, CHALLENGER):
        assert {"version", "rouge_l", "token_f1", "error_rate", "p50_ms", "p95_ms"} <= set(view[side])
    assert view[CHAMPION]["version"] == "1" and view[CHALLENGER]["version"] == "2"
    assert view[CHALLENGER]["error_rate"] == 0.2
    assert view["difference"]["rouge_l"] == pytest.approx((0 - 0.7 + 0 - 0.9 + 0.1) / 5, abs=1e-4)
    low, high = view["difference"]["ci95"]
    assert low <= view["difference"]["rouge_l"] <= high
    assert view["new_rows"]["examples"] == 2 and view["new_rows"]["rouge_l"] == 0.4
    assert [s["question"] for s in view["samples"]] == ["question 3", "question 1", "question 4"]
    failed = view["samples"][0][CHALLENGER]
    assert failed["error"] == "HTTP 500: boom" and failed["answer"] == ""
    assert view["requests"] == 12 and view["blob"] == "evals/m/m-2.json"


def test_pending_tasks_are_what_has_no_result_yet() -> None:
    rec = record([result(0.9), None], [None, result(0.5)], new=[None])
    assert pending_tasks(rec) == [Task(0, CHALLENGER), Task(1, CHAMPION), Task(2, CHALLENGER)]
    no_champion = record(None, [None, result(0.1)])
    assert pending_tasks(no_champion) == [Task(0, CHALLENGER)]
