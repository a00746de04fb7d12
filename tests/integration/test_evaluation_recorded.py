"""Which recorded evaluation stands in for a sleeping champion, against real evaluation blobs in Azurite: only
evaluations that asked that version (not ones that copied its answers from a record), with the same
EVAL_MAX_NEW_TOKENS, still stored; the one sharing most conversations with the gate set (ties: the newest); too
few in common, and the reason says how many and which setting."""

from __future__ import annotations

import dataclasses
from typing import Any

from shared.evaluation.examples import Example, Selection
from shared.evaluation.recorded import RECORDED_FROM, find_recorded, stand_in
from shared.evaluation.runner import CHALLENGER, CHAMPION, EvalStore
from shared.records import RunRecord

VERSION, RUN = "3", "bot-3"


def answer(text: str) -> dict[str, Any]:
    return {"ok": True, "answer": text, "rouge_l": 0.5, "token_f1": 0.5, "error": "", "latency_ms": 10.0}


def example(i: int) -> dict[str, Any]:
    return {"id": f"{i:04x}", "messages": [{"role": "user", "content": f"question {i}"}], "reference": f"ref {i}"}


def evaluation(
    settings: Any, run_id: str, side: str, ids: list[int], *, tokens: int = 32, copied: bool = False, at: str = ""
) -> RunRecord:
    """A stored evaluation in which version 3 answered ``ids`` on ``side``, and the run that points to it."""
    blob = f"evals/bot/{run_id}.json"
    three = {"version": VERSION, "run_id": RUN, "deployment": "v3", **({"recorded": {"blob": "x"}} if copied else {})}
    other = {"version": "9", "run_id": "bot-9", "deployment": "v9"}
    rows = [
        {
            **example(i),
            "set": "gate",
            side: answer(f"three says {i}"),
            (CHALLENGER if side == CHAMPION else CHAMPION): None,
        }
        for i in ids
    ]
    record = {
        "model": "bot",
        "run_id": run_id,
        "settings": {"max_new_tokens": tokens},
        CHAMPION: three if side == CHAMPION else other,
        CHALLENGER: three if side == CHALLENGER else other,
        "examples": rows,
    }
    EvalStore(settings, blob).save(record)
    view = {"blob": blob, "decided_at": at or "2026-01-01T00:00:00Z"}
    view[CHAMPION] = {**record[CHAMPION]}
    view[CHALLENGER] = {**record[CHALLENGER]}
    return RunRecord(model="bot", run_id=run_id, evaluation=view)


def gate_of(ids: list[int]) -> Selection:
    return Selection(examples=[Example.from_dict(example(i)) for i in ids[:4]], ids={f"{i:04x}" for i in ids})


def test_the_record_sharing_most_with_the_gate_set_stands_in(settings: Any) -> None:
    settings = dataclasses.replace(settings, eval_max_new_tokens=32)
    own = evaluation(settings, "bot-3", CHALLENGER, [1, 2, 3])  # its own evaluation, as the challenger
    later = evaluation(settings, "bot-45", CHAMPION, [1, 2, 3, 4, 5], at="2026-02-01T00:00:00Z")  # its champion
    copied = evaluation(settings, "bot-678", CHAMPION, list(range(10)), copied=True)  # a copy: never a source
    longer = evaluation(settings, "bot-7", CHALLENGER, list(range(10)), tokens=64)  # other max_new_tokens
    unrelated = RunRecord(model="bot", run_id="bot-8", evaluation={"blob": "evals/bot/bot-8.json"})
    found, why = find_recorded(settings, [own, later, copied, longer, unrelated], VERSION, RUN)
    assert why == "" and [(r.run_id, r.side) for r in found] == [("bot-45", CHAMPION), ("bot-3", CHALLENGER)]

    chosen = stand_in(found, gate_of([2, 3, 4, 5, 6]), limit=4, minimum=3)
    assert chosen.fallback == "" and chosen.selection is not None and chosen.answers is not None
    assert [e.id for e in chosen.selection.examples] == ["0002", "0003", "0004", "0005"]
    assert chosen.provenance == {
        "blob": "evals/bot/bot-45.json",
        "run_id": "bot-45",
        "side": CHAMPION,
        "at": "2026-02-01T00:00:00Z",
        "examples": 4,
    }
    assert chosen.answers["0004"] == {**answer("three says 4"), RECORDED_FROM: "evals/bot/bot-45.json"}
    # the older record wins only by sharing more
    assert stand_in(found, gate_of([1, 2, 3]), limit=4, minimum=3).provenance["run_id"] == "bot-45"

    # too few in common: the reason names the record, the counts and the setting
    few = stand_in(found, gate_of([5, 6, 7, 8, 9]), limit=4, minimum=3)
    assert few.selection is None and few.provenance["examples"] == 1
    assert few.fallback == (
        "its recorded evaluation evals/bot/bot-45.json (2026-02-01T00:00:00Z) shares only 1 of the gate set's 4 "
        "conversations, fewer than EVAL_MIN_RECORDED_EXAMPLES 3 (or the whole gate set when smaller)"
    )
    # a gate set smaller than the minimum needs all of it, not the minimum
    assert stand_in(found, gate_of([1, 2]), limit=4, minimum=20).selection is not None
    assert stand_in(found, gate_of([5, 6]), limit=4, minimum=20).selection is None
    none = stand_in(found, gate_of([7, 8]), limit=4, minimum=3)
    assert none.fallback == "none of its recorded answers (2 evaluations) is in the gate set"

    # other EVAL_MAX_NEW_TOKENS only, or nothing recorded at all: said so
    assert find_recorded(settings, [longer], VERSION, RUN) == (
        [],
        "its recorded evaluations used another EVAL_MAX_NEW_TOKENS (64; now 32)",
    )
    _, nothing = find_recorded(settings, [copied, unrelated], VERSION, RUN)
    assert nothing.startswith("no evaluation of it is recorded")

    # a blob deleted since: skipped
    from shared.storage import blob_service

    blob_service(settings).get_blob_client(settings.training_container, "evals/bot/bot-45.json").delete_blob()
    found, _ = find_recorded(settings, [own, later], VERSION, RUN)
    assert [r.run_id for r in found] == ["bot-3"]
