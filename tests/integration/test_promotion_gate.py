"""The promotion gate on the real local backend: real tiny training, real deployments, every evaluation asked
through the endpoint with the gateway's client, pinned per deployment by the ``azureml-model-deployment`` header.

Two trained versions carry the whole story (later versions re-register their outputs, with no training time):
v1 learns good support conversations; v2 learns four times as much data whose answers were shuffled across
conversations, so on v1's held-out conversations it answers measurably worse (about 0.31 vs 0.68 mean ROUGE-L
here, against a tolerance of 0.02). v2 is held, v1 keeps serving exactly as before, and ``promote`` puts v2 live
anyway. Then: a challenger whose every request fails is held on its error rate; a golden set is what both are
scored on; ``PROMOTION_POLICY=always`` promotes a worse version; ``manual`` waits, is rejected, or is promoted.
The second test covers what can happen mid-evaluation: a crash (resumed without asking anything twice), slices
over several ticks, a newer version (superseded), a deleted deployment (rollback), and a wake (no evaluation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from localml.state import read_json
from shared.backends.base import MODEL_TAG, RUN_TAG, DeploymentPhase
from shared.cli.evaluation import render_evaluation
from shared.dropzone import classify
from shared.evaluation.runner import CHALLENGER, CHAMPION, EvalStore
from shared.events import handle_event
from shared.ingest import ingest_blob
from shared.ledger import ModelRecord, RunRecord
from shared.models import request_wake
from shared.names import endpoint_name
from shared.reconcile import evaluate as evaluate_step
from shared.reconcile import plan, steps
from shared.reconcile.tick import reconcile_model
from shared.runs.context import RunContext
from shared.runs.outcome import offer_version
from shared.runs.promotion import PromotionStateError, promote_run, reject_run
from shared.runs.submit import start_run_for_dataset
from shared.runs.views import run_detail
from tests.integration import test_runs_support as support
from tests.integration.test_runs_support import (
    EventSink,
    chat,
    conversations,
    drive,
    job_events,
    live_on,
    make_context,
    model_of,
    prepare_dataset,
    run_of,
    shutdown_backend,
    upload_blob,
    wait_for,
)
from tests.testdata import TOPICS

event_sink = support.event_sink  # fixture

pytestmark = pytest.mark.slow
MODEL = "gate-bot"
EVAL_ENV = {
    "PROMOTION_POLICY": "gate",
    "EVAL_MAX_EXAMPLES": "4",
    "EVAL_MAX_NEW_TOKENS": "32",
    "EVAL_CONCURRENCY": "4",
    "EVAL_TIMEOUT_SECONDS": "60",
}
# 40 steps (8 epochs of the 20 good rows): the tiny model learns which answer goes with which question. 12 steps,
# the other tests' setting, leave it answering "and will be and will be ...", and the comparison would say little.
TRAINING = {"max_steps": 40}


class InjectedCrash(BaseException):
    """Stands for the process dying (no ``except Exception`` in the app may swallow it)."""


@pytest.fixture
def gate_ctx(app_env: dict[str, str], event_sink: EventSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunContext]:
    ctx = make_context(
        monkeypatch,
        AUTOTUNE_HOST_URL=event_sink.url,
        EVENTS_TOPIC_ENDPOINT=f"{event_sink.url}/api/events",  # the sink stands in for the Event Grid topic too
        EVENTS_TOPIC_KEY="topic-key",
        FINETUNE_PARAMETERS=json.dumps(TRAINING),
        **EVAL_ENV,
    )
    yield ctx
    shutdown_backend(ctx)


def with_settings(ctx: RunContext, **changes: Any) -> RunContext:
    return RunContext(dataclasses.replace(ctx.settings, **changes), ctx.ledger, ctx.backend)


def shuffled_answers(count: int, seed: int) -> list[dict[str, Any]]:
    """Conversations whose assistant answers were shuffled across conversations (a pasting accident)."""
    rows = conversations(count, seed)
    answers = [row["messages"][-1]["content"] for row in rows]
    random.Random(seed).shuffle(answers)
    for row, answer in zip(rows, answers, strict=True):
        row["messages"][-1]["content"] = answer
    return rows


def train(ctx: RunContext, sink: EventSink, seed: int, **dataset: Any) -> RunRecord:
    prepared = prepare_dataset(ctx, MODEL, seed=seed, **dataset)
    run = start_run_for_dataset(ctx.ledger, prepared, ctx)
    assert run.state == "submitted", run.error or run.details
    for event in job_events(sink, run.job_name):
        handle_event(event, ctx, reconcile=False)
    run = run_of(ctx, run)
    assert run.state == "registered", run.error
    return run


def again(ctx: RunContext, name: str, trained_by: RunRecord) -> RunRecord:
    """A new run whose version is the output ``trained_by`` already trained (same weights, same data), offered
    as the model's next version: a version to evaluate with no training time."""
    registered = ctx.settings.registered_model_name(MODEL)
    run_id = f"{MODEL}-{name}"
    version = ctx.backend.register_model(trained_by.job_name, registered, {RUN_TAG: run_id, MODEL_TAG: MODEL})
    run = RunRecord(model=MODEL, run_id=run_id, dataset_id=trained_by.dataset_id, registered_model=registered)
    run.registered_version = str(version.version)
    for state in ("queued", "submitted", "completed", "registered"):
        run.transition(state)
    run = ctx.ledger.create(run)
    assert offer_version(ctx, run) == "desired"
    return run


def settled(ctx: RunContext, run: RunRecord, state: str):
    return lambda m: not m.deployment and run_of(ctx, run).state == state


def lifecycle_events(sink: EventSink, event_type: str) -> list[dict[str, Any]]:
    return [e for e in sink.events if e.get("eventType") == event_type]


def deleted(ctx: RunContext, deployment: str) -> None:
    endpoint = endpoint_name(MODEL)
    wait_for(
        lambda: ctx.backend.get_deployment(endpoint, deployment).phase == DeploymentPhase.NOT_FOUND,
        60,
        f"deployment {deployment} to be deleted",
    )


def crash_after_batches(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The process dies right after the ``count``-th batch of evaluation answers is recorded."""
    batches: list[int] = []

    def crash(model_name: str, done: int) -> None:
        batches.append(done)
        if len(batches) == count:
            raise InjectedCrash(f"process died after batch {count} was recorded")

    monkeypatch.setattr(evaluate_step, "evaluation_boundary", crash)


def fall_asleep(ctx: RunContext) -> None:
    """What the sweeper does to an idle model: asleep in the ledger, its endpoint deleted."""

    def put_to_sleep(record: ModelRecord | None) -> ModelRecord | None:
        assert record is not None
        record.state, record.sleep_reason = "sleeping", "idle (test)"
        record.endpoint_name = record.scoring_uri = record.live_deployment = ""
        record.deployment = {}
        return record

    endpoint = endpoint_name(MODEL)
    ctx.ledger.mutate(ModelRecord, "models", MODEL, put_to_sleep)
    ctx.backend.begin_delete_endpoint(endpoint)
    wait_for(lambda: ctx.backend.get_endpoint(endpoint) is None, 60, "the endpoint to be deleted")


def blob(ctx: RunContext, run: RunRecord) -> dict[str, Any]:
    found = EvalStore(ctx.settings, f"evals/{MODEL}/{run.run_id}.json").load()
    assert found is not None
    return found


def test_a_worse_version_is_held_and_a_person_can_overrule(
    gate_ctx: RunContext, event_sink: EventSink, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = gate_ctx
    endpoint = endpoint_name(MODEL)

    # ---- v1: no champion; scored on its own held-out split; promoted ----------------------------------------
    run1 = train(ctx, event_sink, seed=1)
    drive(ctx, MODEL, live_on("1"))
    run1 = run_of(ctx, run1)
    first = run1.evaluation
    assert run1.state == "live" and first["decision"] == "promoted" and first["policy"] == "gate"
    assert first["champion"] is None and first["difference"] is None and first["examples"] == 4
    assert first["source"]["kind"] == "own_held_out" and first["source"]["run_id"] == run1.run_id
    assert first["challenger"]["version"] == "1" and first["challenger"]["error_rate"] == 0.0
    assert first["reason"].startswith("no champion") and "PROMOTION_MIN_SCORE" in first["reason"]
    stored = blob(ctx, run1)
    assert [e["set"] for e in stored["examples"]] == ["gate"] * 4
    assert all(e[CHALLENGER]["ok"] and e[CHAMPION] is None for e in stored["examples"])
    before = chat(ctx, endpoint)

    # ---- v2: shuffled answers, four times the data: held on v1's held-out conversations ----------------------
    run2 = train(ctx, event_sink, seed=2, rows=100, train_rows=shuffled_answers(96, seed=2))
    model = drive(ctx, MODEL, settled(ctx, run2, "held"), timeout=240)
    run2 = run_of(ctx, run2)
    held = run2.evaluation
    assert held["decision"] == "held" and held["examples"] == 4
    assert held["source"]["kind"] == "champion_held_out" and held["source"]["run_id"] == run1.run_id
    assert held["champion"]["version"] == "1" and held["challenger"]["version"] == "2"
    assert held["champion"]["rouge_l"] == first["challenger"]["rouge_l"]  # greedy: v1 answers as it did
    margin = held["champion"]["rouge_l"] - held["challenger"]["rouge_l"]
    assert margin > 0.15, held  # measured 0.37; the gate needs more than 0.02
    assert held["difference"]["rouge_l"] == pytest.approx(-margin, abs=1e-3)
    low, high = held["difference"]["ci95"]  # four conversations: a wide interval, reported beside the mean
    assert low < held["difference"]["rouge_l"] < high and low < -margin / 2
    assert "lower by more than PROMOTION_MAX_REGRESSION 0.02" in held["reason"]
    assert run2.error == f"held by the promotion gate: {held['reason']}"
    assert held["new_rows"] is not None and held["new_rows"]["examples"] >= 1  # its own new held-out rows
    assert len(held["samples"]) == 3 and all(s["champion"] and s["challenger"] for s in held["samples"])
    assert [state for state, _ in run2.timeline][-2:] == ["deploying", "held"]
    # the champion keeps all the traffic and answers exactly as before; the held version is gone
    assert model.live_version == "1" and model.desired_version == "1" and model.state == "live"
    assert "held by the promotion gate" in model.error
    assert ctx.backend.get_endpoint(endpoint).traffic == {"v1": 100}
    assert chat(ctx, endpoint) == before
    deleted(ctx, "v2")
    assert reconcile_model(ctx, MODEL) == ["idle"]  # not rolled out again every tick
    (announced,) = lifecycle_events(event_sink, "Autotune.RunHeld")
    assert announced["subject"] == f"models/{MODEL}/runs/{run2.run_id}"
    assert announced["data"]["decision"] == "held" and announced["data"]["reason"] == held["reason"]

    # status RUN shows both side by side, the interval, and three example answers from each
    detail = run_detail(ctx, run2.run_id)
    assert detail["evaluation"] == held and detail["decision"] == "held"
    shown = "\n".join(render_evaluation(detail))
    assert "champion v1" in shown and "challenger v2" in shown and "95% CI" in shown and "HELD" in shown
    assert shown.count("     champion:   ") == 3 and shown.count("     challenger: ") == 3
    assert f"python -m shared promote {run2.run_id}" in shown

    # ---- promote: v2 goes live anyway, recorded as an override, without a second evaluation -------------------
    with pytest.raises(PromotionStateError, match="only held or awaiting_approval"):
        promote_run(ctx, run1.run_id)
    promoted = promote_run(ctx, run2.run_id)
    assert promoted.state == "deploying" and promoted.evaluation["decision"] == "overridden"
    assert promoted.evaluation["override"]["previous_decision"] == "held" and promoted.evaluation["override"]["at"]
    store = EvalStore(ctx.settings, f"evals/{MODEL}/{run2.run_id}.json")
    store.load()
    etag = store.etag
    with caplog.at_level(logging.INFO, logger="shared.reconcile.evaluate"):
        drive(ctx, MODEL, live_on("2"))
    assert "no evaluation of v2: promoted by request at" in caplog.text
    store.load()
    assert store.etag == etag  # not evaluated again
    run2 = run_of(ctx, run2)
    assert run2.state == "live" and run2.evaluation["decision"] == "overridden" and not run2.error
    assert [state for state, _ in run2.timeline][-3:] == ["held", "deploying", "live"]
    with pytest.raises(PromotionStateError):
        promote_run(ctx, run2.run_id)

    # ---- a challenger that fails every request (its server hangs after the smoke test): held on errors ---------
    fails = with_settings(ctx, eval_timeout_seconds=8.0)
    assert chat(ctx, endpoint).strip()  # the champion v2 has answered once: warm, well within the timeout
    run3 = again(ctx, "hangs", trained_by=run1)
    stopped: list[int] = []

    def hang_after_smoke(model_name: str, step: str) -> None:
        if step == steps.SMOKE and not stopped:
            server = read_json(ctx.backend.layout.deployment(endpoint, "v3") / "server.json")
            stopped.append(int(server["pid"]))
            os.killpg(stopped[0], signal.SIGSTOP)  # alive to the platform, silent to every request

    steps.step_boundary, real_boundary = hang_after_smoke, steps.step_boundary
    try:
        drive(fails, MODEL, settled(ctx, run3, "held"), timeout=180)
    finally:
        steps.step_boundary = real_boundary
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):  # deleting the held deployment may have killed it
                os.killpg(pid, signal.SIGCONT)
    failing = run_of(ctx, run3).evaluation
    assert stopped and failing["challenger"]["error_rate"] == 1.0 and failing["challenger"]["errors"] == 4
    assert failing["champion"]["error_rate"] == 0.0
    assert "error rate 100.0% vs 0.0% for the champion (version 2)" in failing["reason"]
    assert all("EVAL_TIMEOUT_SECONDS" in s["challenger"]["error"] for s in failing["samples"])
    assert model_of(ctx, MODEL).live_version == "2"
    deleted(ctx, "v3")

    # ---- a golden set: what both answer, never trained on ----------------------------------------------------
    golden_rows = [  # six distinct questions with the owner's answers
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        for questions, answer in TOPICS.values()
        for question in questions[:2]
    ][:6]
    golden_rows.append({"messages": [{"role": "user", "content": "only a question"}]})  # rejected, counted
    golden = "".join(json.dumps(row) + "\n" for row in golden_rows).encode()
    upload_blob(ctx, f"incoming/{MODEL}/eval.jsonl", golden)
    assert classify(f"incoming/{MODEL}/eval.jsonl").kind == "golden"
    from shared.storage import blob_service

    client = blob_service(ctx.settings).get_blob_client(ctx.settings.training_container, f"incoming/{MODEL}/eval.jsonl")
    assert ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger).action == "ignored"  # not a training drop
    run4 = again(ctx, "golden", trained_by=run1)
    drive(ctx, MODEL, live_on("4"))
    scored = run_of(ctx, run4).evaluation
    assert scored["decision"] == "promoted" and scored["source"]["kind"] == "golden"
    assert scored["source"]["golden"]["rejected"] == 1 and scored["source"]["golden"]["reasons"]
    questions = {row["messages"][0]["content"] for row in golden_rows[:6]}
    assert scored["source"]["golden"]["rows"] == 6 and scored["source"]["askable"] == 6
    gate_set = [e for e in blob(ctx, run4)["examples"] if e["set"] == "gate"]
    assert len(gate_set) == 4 and all(e["messages"][-1]["content"] in questions for e in gate_set)
    assert all(e[CHAMPION]["ok"] and e[CHALLENGER]["ok"] for e in gate_set)
    assert scored["challenger"]["rouge_l"] > scored["champion"]["rouge_l"]  # v1's weights beat the shuffled v2
    client.delete_blob()

    # ---- PROMOTION_POLICY=always: a worse version is promoted, with the gate's verdict on record ---------------
    always = with_settings(ctx, promotion_policy="always")
    run5 = again(ctx, "always", trained_by=run2)
    drive(always, MODEL, live_on("5"))
    forced = run_of(ctx, run5).evaluation
    assert forced["decision"] == "promoted" and forced["policy"] == "always"
    assert forced["reason"].startswith("PROMOTION_POLICY=always") and "lower by more than" in forced["reason"]

    # ---- PROMOTION_POLICY=manual: every version waits; promote deploys one, reject ends another -----------------
    manual = with_settings(ctx, promotion_policy="manual")
    run6 = again(ctx, "manual-a", trained_by=run1)
    drive(manual, MODEL, settled(ctx, run6, "awaiting_approval"))
    waiting = run_of(ctx, run6)
    assert waiting.evaluation["decision"] == "awaiting_approval" and "would pass" in waiting.evaluation["reason"]
    assert model_of(ctx, MODEL).live_version == "5" and "awaits approval" in model_of(ctx, MODEL).error
    assert lifecycle_events(event_sink, "Autotune.RunHeld")[-1]["data"]["decision"] == "awaiting_approval"
    deleted(ctx, "v6")  # no GPU bills while it waits for a person
    run7 = again(ctx, "manual-b", trained_by=run1)
    drive(manual, MODEL, settled(ctx, run7, "awaiting_approval"))
    promote_run(ctx, run7.run_id)
    drive(manual, MODEL, live_on("7"))
    assert run_of(ctx, run7).evaluation["decision"] == "overridden"
    assert run_of(ctx, run7).evaluation["override"]["previous_decision"] == "awaiting_approval"
    overtaken = run_of(ctx, run6)  # the older one waiting gives way to the newer one now live
    assert overtaken.state == "superseded" and overtaken.details["superseded_by"] == run7.run_id
    run8 = again(ctx, "manual-c", trained_by=run1)
    drive(manual, MODEL, settled(ctx, run8, "awaiting_approval"))
    rejected = reject_run(ctx, run8.run_id)
    assert rejected.state == "held" and rejected.evaluation["decision"] == "rejected"
    assert rejected.evaluation["rejected_at"] and "rejected by request" in model_of(ctx, MODEL).error
    with pytest.raises(PromotionStateError, match="only runs awaiting approval"):
        reject_run(ctx, run8.run_id)
    with pytest.raises(PromotionStateError, match="older than run"):
        promote_run(ctx, run3.run_id)  # newer wins: the held v3 cannot replace the live v7
    assert model_of(ctx, MODEL).live_version == "7"


def tick_until(ctx: RunContext, done, timeout: float = 120) -> list[list[str]]:
    """Reconcile with a tick budget that ends at once (one batch of answers per tick) until ``done(model)``."""
    ticks: list[list[str]] = []

    def tick() -> bool:
        ticks.append(reconcile_model(ctx, MODEL, budget_seconds=0.0))
        return done(model_of(ctx, MODEL))

    wait_for(tick, timeout, "the model to get there", interval=0.1)
    return ticks


def evaluating(at_least: int):
    def check(model: ModelRecord) -> bool:
        progress = model.deployment or {}
        return progress.get("step") == steps.EVALUATE and (progress.get("evaluation") or {}).get("done", 0) >= at_least

    return check


def test_crash_slices_newer_version_rollback_and_wake_mid_evaluation(
    gate_ctx: RunContext, event_sink: EventSink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = gate_ctx
    endpoint = endpoint_name(MODEL)
    run1 = train(ctx, event_sink, seed=1)
    drive(ctx, MODEL, live_on("1"))
    one_at_a_time = with_settings(ctx, eval_concurrency=1)

    # ---- a crash after two answers are recorded; the rest over several ticks; nothing asked twice ------------
    run2 = again(ctx, "crash", trained_by=run1)
    crash_after_batches(monkeypatch, 2)
    with pytest.raises(InjectedCrash):
        drive(one_at_a_time, MODEL, lambda m: False, timeout=120)
    stuck = model_of(ctx, MODEL)
    assert stuck.deployment["step"] == steps.EVALUATE and stuck.deployment["evaluation"]["done"] == 2
    assert stuck.deployment["evaluation"]["requests"] == 8  # 4 conversations x 2 deployments; no new rows
    recorded = blob(ctx, run2)
    answered = [
        (index, side, example[side])
        for index, example in enumerate(recorded["examples"])
        for side in (CHAMPION, CHALLENGER)
        if example.get(side)
    ]
    assert len(answered) == 2
    monkeypatch.setattr(evaluate_step, "evaluation_boundary", lambda *_: None)
    # the job-event handler's reconcile never runs the evaluation (it must answer Event Grid within seconds)
    assert reconcile_model(ctx, MODEL, stop_before=plan.SCORING_STEPS) == ["evaluate: left for the next tick"]
    assert model_of(ctx, MODEL).deployment["evaluation"]["done"] == 2
    ticks = tick_until(one_at_a_time, live_on("2"))
    assert sum(actions.count(steps.EVALUATE) for actions in ticks) >= 6  # one answer per tick: six ticks
    final = blob(ctx, run2)
    for index, side, result in answered:
        assert final["examples"][index][side] == result  # resumed: the recorded answers were never asked again
    assert run_of(ctx, run2).evaluation["decision"] == "promoted"
    assert run_of(ctx, run2).evaluation["requests"] == 8

    # ---- a newer version arrives mid-evaluation: the older one is superseded, the newer one evaluated ----------
    run3 = again(ctx, "overtaken", trained_by=run1)
    tick_until(one_at_a_time, evaluating(1))
    run4 = again(ctx, "newer", trained_by=run1)
    drive(ctx, MODEL, live_on("4"))
    overtaken = run_of(ctx, run3)
    assert overtaken.state == "superseded" and overtaken.details["superseded_by"] == run4.run_id
    newer = run_of(ctx, run4).evaluation
    assert newer["decision"] == "promoted" and newer["champion"]["version"] == "2"
    deleted(ctx, "v3")

    # ---- the challenger's deployment disappears mid-evaluation: rolled back, the champion keeps serving --------
    run5 = again(ctx, "vanishes", trained_by=run1)
    tick_until(one_at_a_time, evaluating(1))
    ctx.backend.begin_delete_deployment(endpoint, "v5")
    model = drive(ctx, MODEL, settled(ctx, run5, "failed"))
    failed = run_of(ctx, run5)
    assert "during the evaluation" in failed.error and failed.details["failed_step"] == "deploy:evaluate"
    assert model.live_version == "4" and ctx.backend.get_endpoint(endpoint).traffic == {"v4": 100}
    assert chat(ctx, endpoint).strip()

    # ---- a wake redeploys the live version: no evaluation, the recorded one stays as it was -------------------
    fall_asleep(ctx)
    store = EvalStore(ctx.settings, f"evals/{MODEL}/{run4.run_id}.json")
    store.load()
    etag, evaluation = store.etag, run_of(ctx, run4).evaluation
    assert request_wake(ctx.settings, ctx.ledger, MODEL, "test")
    with caplog.at_level(logging.INFO, logger="shared.reconcile.evaluate"):
        drive(ctx, MODEL, live_on("4"))
    assert "no evaluation of v4: the live version is being redeployed (a wake)" in caplog.text
    assert run_of(ctx, run4).evaluation == evaluation and run_of(ctx, run4).state == "live"
    store.load()
    assert store.etag == etag
