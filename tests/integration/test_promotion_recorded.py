"""The promotion gate while the model sleeps: the champion is not deployed, so its answers recorded by an earlier
evaluation stand in for it, on the real local backend, with every challenger answer asked through the endpoint.

v1 learns good support conversations and goes live (its own evaluation records its answers). The model sleeps.
v2, trained on shuffled answers, arrives; on wake it is compared, paired, with v1's recorded answers and held
(judged alone, as before, it would have been promoted), also when the process dies mid-evaluation; the same
weights evaluated again without a crash get the same decision and the same numbers. A version with v1's weights
is promoted against the same record. Too few recorded answers in common: judged alone, and the reason says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.cli.evaluation import render_evaluation
from shared.evaluation.gate import PROMOTED, Thresholds, decide
from shared.evaluation.recorded import RECORDED_FROM
from shared.evaluation.runner import CHALLENGER, CHAMPION
from shared.models import request_wake
from shared.names import endpoint_name
from shared.reconcile import evaluate as evaluate_step
from shared.runs.context import RunContext
from shared.runs.views import run_detail
from tests.integration import test_promotion_gate as gate
from tests.integration.test_promotion_gate import (
    MODEL,
    InjectedCrash,
    again,
    blob,
    crash_after_batches,
    fall_asleep,
    shuffled_answers,
    train,
    with_settings,
)
from tests.integration.test_runs_support import EventSink, drive, live_on, model_of, run_of

event_sink = gate.event_sink  # fixtures
gate_ctx = gate.gate_ctx

pytestmark = pytest.mark.slow


def wake_and_settle(ctx: RunContext, run: Any, state: str, live: str, *, wake: bool = True) -> dict[str, Any]:
    """Wake the sleeping model (its desired version is ``run``'s) and drive it until ``run`` is ``state`` and
    version ``live`` serves; the run's evaluation."""
    if wake:
        assert model_of(ctx, MODEL).state == "sleeping"
        assert request_wake(ctx.settings, ctx.ledger, MODEL, "test")
    drive(ctx, MODEL, lambda m: live_on(live)(m) and run_of(ctx, run).state == state, timeout=240)
    return run_of(ctx, run).evaluation


def test_a_sleeping_champion_is_compared_by_its_recorded_answers(
    gate_ctx: RunContext, event_sink: EventSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_settings(gate_ctx, eval_min_recorded_examples=3)
    endpoint = endpoint_name(MODEL)
    run1 = train(ctx, event_sink, seed=1)
    drive(ctx, MODEL, live_on("1"))
    first = run_of(ctx, run1).evaluation  # v1 answered its own held-out split as the challenger: recorded
    assert first["decision"] == "promoted" and first["examples"] == 4
    v1_answers = {e["id"]: e[CHALLENGER] for e in blob(ctx, run1)["examples"]}

    # ---- asleep; a worse version arrives; on wake it is held against v1's recorded answers (with a crash) -------
    fall_asleep(ctx)
    run2 = train(ctx, event_sink, seed=2, rows=100, train_rows=shuffled_answers(96, seed=2))
    assert model_of(ctx, MODEL).state == "sleeping" and model_of(ctx, MODEL).desired_version == "2"
    one_at_a_time = with_settings(ctx, eval_concurrency=1)
    crash_after_batches(monkeypatch, 2)
    assert request_wake(ctx.settings, ctx.ledger, MODEL, "test")
    with pytest.raises(InjectedCrash):
        drive(one_at_a_time, MODEL, lambda m: False, timeout=240)
    monkeypatch.setattr(evaluate_step, "evaluation_boundary", lambda *_: None)
    planned = blob(ctx, run2)
    gate_rows = [e for e in planned["examples"] if e["set"] == "gate"]
    assert planned[CHAMPION]["recorded"]["blob"] == first["blob"] and planned[CHAMPION]["deployment"] == ""
    assert len(gate_rows) == 4 and {e["id"] for e in gate_rows} <= set(v1_answers)
    for row in gate_rows:  # v1's side is filled from its record before anything is asked, and marked so
        assert row[CHAMPION] == {**v1_answers[row["id"]], RECORDED_FROM: first["blob"]}
    progress = model_of(ctx, MODEL).deployment["evaluation"]
    assert progress["done"] == 2 and progress["requests"] == len(planned["examples"])  # the challenger's alone
    answered = [(i, e[CHALLENGER]) for i, e in enumerate(planned["examples"]) if e[CHALLENGER]]
    assert len(answered) == 2
    held = wake_and_settle(
        one_at_a_time, run2, "held", live="1", wake=False
    )  # held: the sleeping v1 is redeployed instead
    final = blob(ctx, run2)
    for index, result in answered:
        assert final["examples"][index][CHALLENGER] == result  # resumed: nothing recorded was asked again
    recorded = held["champion"]["recorded"]
    assert recorded == {
        "blob": first["blob"],
        "run_id": run1.run_id,
        "side": CHALLENGER,
        "at": first["decided_at"],
        "examples": 4,
    }
    assert held["decision"] == "held" and held["examples"] == 4 and held["source"]["recorded"] == recorded
    assert held["champion"]["version"] == "1" and held["champion"]["rouge_l"] == first["challenger"]["rouge_l"]
    assert held["champion"]["rouge_l"] - held["challenger"]["rouge_l"] > 0.15, held
    assert (
        f"for the champion (version 1, asleep: its answers recorded by the evaluation {first['blob']}"
        in (held["reason"])
    )
    assert (
        "4 conversations in common" in held["reason"]
        and "lower by more than PROMOTION_MAX_REGRESSION" in (held["reason"])
    )
    assert held["requests"] == len(final["examples"])  # only the challenger was asked
    alone = {"examples": held["examples"], "challenger": held["challenger"], "champion": None}
    assert decide("gate", alone, Thresholds.from_settings(ctx.settings))[0] == PROMOTED  # what it did before
    assert ctx.backend.get_endpoint(endpoint).traffic == {"v1": 100}
    detail = run_detail(ctx, run2.run_id)
    assert detail["evaluation"]["champion"]["recorded"] == recorded
    shown = "\n".join(render_evaluation(detail))
    assert f"champion v1 was asleep, not asked: its answers recorded by the evaluation {first['blob']}" in shown
    assert f"(run {run1.run_id}, {first['decided_at']}), 4 conversations in common" in shown

    # ---- the same weights again, no crash: the same record, the same decision, the same numbers ---------------
    fall_asleep(ctx)
    run3 = again(ctx, "shuffled-again", trained_by=run2)
    again_held = wake_and_settle(ctx, run3, "held", live="1")
    assert again_held["champion"]["recorded"] == recorded  # run2's copy of v1's answers is not itself a record
    for key in ("decision", "examples", "difference"):
        assert again_held[key] == held[key], key
    for side in ("champion", "challenger"):
        assert again_held[side]["rouge_l"] == held[side]["rouge_l"]
        assert again_held[side]["error_rate"] == held[side]["error_rate"]

    # ---- v1's own weights as a new version: as good as the record, promoted -----------------------------------
    fall_asleep(ctx)
    three = with_settings(ctx, eval_max_examples=3)
    run4 = again(ctx, "same-weights", trained_by=run1)
    equal = wake_and_settle(three, run4, "live", live="4")
    assert equal["decision"] == "promoted" and equal["examples"] == 3
    assert equal["champion"]["recorded"]["blob"] == first["blob"] and equal["champion"]["recorded"]["examples"] == 3
    assert equal["challenger"]["rouge_l"] == equal["champion"]["rouge_l"]  # greedy: the same answers
    assert "asleep: its answers recorded by the evaluation" in equal["reason"]
    assert "within PROMOTION_MAX_REGRESSION" in equal["reason"]

    # ---- too few recorded answers in common (v4 answered 3, the gate set has 4): judged alone, and said so -----
    fall_asleep(ctx)
    strict = with_settings(ctx, eval_min_recorded_examples=4)
    run5 = again(ctx, "too-few", trained_by=run2)
    alone = wake_and_settle(strict, run5, "live", live="5")
    four = run_of(ctx, run4).evaluation["blob"]
    assert alone["decision"] == "promoted" and alone["champion"] is None
    assert alone["source"]["kind"] == "own_held_out" and alone["source"]["recorded"]["blob"] == four
    assert alone["reason"].startswith("no champion") and "PROMOTION_MIN_SCORE" in alone["reason"]
    assert (
        f"(no champion to compare with: version 4 is not deployed (the model was asleep) and its recorded "
        f"evaluation {four}" in alone["reason"]
    )
    assert (
        "shares only 3 of the gate set's 4 conversations, fewer than EVAL_MIN_RECORDED_EXAMPLES 4" in (alone["reason"])
    )
