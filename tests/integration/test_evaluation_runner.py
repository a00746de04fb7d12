"""The evaluation runner against real HTTP endpoints (the stub scoring server on loopback) and Azurite:
pinned, greedy requests through the gateway's client, bounded slices, results saved after every batch, resumed
without asking anything twice, and every kind of failure recorded as an error of the deployment that failed."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from shared.backends.base import ScoringTarget
from shared.evaluation.runner import CHALLENGER, CHAMPION, EvalConflictError, EvalStore, pending_tasks, score_slice
from tests.fakes.scoring_stub import StubReply, StubScoringServer

REFERENCES = [f"answer number {i} is here" for i in range(6)]


def make_record(with_champion: bool = True) -> dict:
    examples = [
        {
            "id": f"{i:04x}",
            "set": "gate",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"}],
            "reference": REFERENCES[i],
            CHAMPION: None,
            CHALLENGER: None,
        }
        for i in range(5)
    ]
    examples.append({**examples[0], "id": "ffff", "set": "new", "reference": REFERENCES[5]})
    return {
        "model": "bot",
        "run_id": "bot-2",
        CHAMPION: {"version": "1", "run_id": "bot-1", "deployment": "v1"} if with_champion else None,
        CHALLENGER: {"version": "2", "run_id": "bot-2", "deployment": "v2"},
        "examples": examples,
    }


def echo_reference(payload: dict) -> str:
    """A perfect model: answers the reference of the question it was asked."""
    question = payload["input_data"]["input_string"][-1]["content"]
    return REFERENCES[int(question.split()[-1])]


@pytest.fixture
def stubs():
    champion = StubScoringServer(key="k1", deployment="v1", answer=echo_reference).start()
    challenger = StubScoringServer(key="k2", deployment="v2", answer="something else entirely").start()
    yield champion, challenger
    champion.stop()
    challenger.stop()


def resolver(champion: StubScoringServer, challenger: StubScoringServer):
    def resolve(side: str) -> ScoringTarget:
        stub = champion if side == CHAMPION else challenger
        headers = {"Authorization": f"Bearer {stub.key}", "azureml-model-deployment": stub.deployment}
        return ScoringTarget(uri=stub.url, headers=headers, deployment=stub.deployment)

    return resolve


def test_slices_resume_without_asking_again(settings, stubs) -> None:
    champion, challenger = stubs
    cfg = dataclasses.replace(settings, eval_concurrency=2, eval_max_new_tokens=17)
    store = EvalStore(cfg, "evals/bot/bot-2.json")
    record = make_record()
    store.save(record)
    saved: list[int] = []

    # a deadline already passed: exactly one batch (EVAL_CONCURRENCY requests) per slice
    assert score_slice(store, record, resolver(*stubs), cfg, 0.0, lambda r: saved.append(len(pending_tasks(r)))) == 2
    assert saved == [9] and len(champion.requests) + len(challenger.requests) == 2
    first_batch = json.loads(json.dumps(record["examples"][0]))

    # a crash here loses nothing recorded: a new worker reads the blob and goes on from it
    fresh = EvalStore(cfg, store.path)
    resumed = fresh.load()
    assert resumed is not None and resumed["examples"][0] == first_batch
    assert score_slice(fresh, resumed, resolver(*stubs), cfg, time.monotonic() + 30) == 9
    assert pending_tasks(resumed) == []
    final = EvalStore(cfg, store.path).load()
    assert final["examples"][0] == first_batch  # the first batch was never asked again
    assert len(champion.requests) == 5 and len(challenger.requests) == 6  # one request per question and side

    for request in champion.requests + challenger.requests:
        body = json.loads(request.body)
        assert body["input_data"]["parameters"] == {"max_new_tokens": 17, "do_sample": False}
        assert body["input_data"]["input_string"][0] == {"role": "system", "content": "Be brief."}
    assert {r.headers["azureml-model-deployment"] for r in champion.requests} == {"v1"}
    assert {r.headers["azureml-model-deployment"] for r in challenger.requests} == {"v2"}
    for example in final["examples"][:5]:
        assert example[CHAMPION]["ok"] and example[CHAMPION]["rouge_l"] == 1.0
        assert example[CHAMPION]["answer"] == example["reference"] and example[CHAMPION]["latency_ms"] > 0
        assert example[CHALLENGER]["ok"] and example[CHALLENGER]["rouge_l"] == 0.0
    assert final["examples"][5][CHAMPION] is None and final["examples"][5][CHALLENGER]["ok"]


def test_failures_count_against_the_deployment_that_failed(settings, stubs) -> None:
    champion, challenger = stubs
    cfg = dataclasses.replace(settings, eval_concurrency=6, eval_timeout_seconds=1.0)
    challenger.script = [
        StubReply(500, b'{"message": "CUDA out of memory"}'),
        StubReply(200, b'{"output": "   "}'),
        StubReply(200, b'{"unexpected": 1}'),
        StubReply(200, b'{"output": "slow"}', delay=3.0),
        StubReply(200, b'{"output": "from the wrong one"}', headers={"azureml-model-deployment": "v1"}),
        StubReply(400, b'{"message": "bad input"}'),
    ]
    record = make_record(with_champion=False)
    store = EvalStore(cfg, "evals/bot/bot-fail.json")
    store.save(record)
    assert score_slice(store, record, resolver(*stubs), cfg, time.monotonic() + 30) == 6
    errors = sorted(e[CHALLENGER]["error"] for e in record["examples"])
    assert all(not e[CHALLENGER]["ok"] and e[CHALLENGER]["rouge_l"] == 0.0 for e in record["examples"])
    assert errors == sorted(
        [
            'HTTP 500: {"message": "CUDA out of memory"}',
            "empty answer",
            "not a chat-completion answer (an object with keys ['unexpected'] and no 'output'): {\"unexpected\": 1}",
            "no answer within 1 s (EVAL_TIMEOUT_SECONDS)",
            "answered by deployment v1, not v2",
            'HTTP 400: {"message": "bad input"}',
        ]
    )
    assert not champion.requests


def test_an_answer_nested_too_deeply_is_a_failed_example_not_a_crash(settings, stubs) -> None:
    _, challenger = stubs
    cfg = dataclasses.replace(settings, eval_concurrency=6)
    challenger.script = [StubReply(200, b"[" * 100_000 + b"]" * 100_000) for _ in range(6)]
    record = make_record(with_champion=False)
    store = EvalStore(cfg, "evals/bot/bot-deep.json")
    store.save(record)
    assert score_slice(store, record, resolver(*stubs), cfg, time.monotonic() + 30) == 6
    for example in record["examples"]:
        assert not example[CHALLENGER]["ok"]
        assert example[CHALLENGER]["error"].startswith("not a chat-completion answer (the answer is not valid JSON: ")


def test_a_rotated_key_is_fetched_again_once(settings, stubs) -> None:
    cfg = dataclasses.replace(settings, eval_concurrency=1)
    resolve_fresh = resolver(*stubs)
    calls: list[str] = []

    def resolve(side: str) -> ScoringTarget:
        calls.append(side)
        target = resolve_fresh(side)
        if calls.count(side) == 1:  # the first lookup hands out a stale key
            return dataclasses.replace(target, headers={**target.headers, "Authorization": "Bearer old"})
        return target

    record = make_record()
    record["examples"] = record["examples"][:1]
    store = EvalStore(cfg, "evals/bot/bot-key.json")
    store.save(record)
    score_slice(store, record, resolve, cfg, time.monotonic() + 30)
    assert record["examples"][0][CHAMPION]["ok"] and record["examples"][0][CHALLENGER]["ok"]
    assert calls == [CHAMPION, CHAMPION, CHALLENGER, CHALLENGER]


def test_the_store_refuses_to_overwrite_another_workers_writes(settings) -> None:
    one, two = EvalStore(settings, "evals/bot/race.json"), EvalStore(settings, "evals/bot/race.json")
    one.save({"n": 1})
    with pytest.raises(EvalConflictError):
        two.save({"n": 2})  # a first write must create the blob
    assert two.load() == {"n": 1}
    two.save({"n": 2})
    with pytest.raises(EvalConflictError):
        one.save({"n": 3})  # one's version is stale now
    assert EvalStore(settings, "evals/bot/race.json").load() == {"n": 2}
