"""An evaluation's questions, fixed once at its start: which conversations, asked of whom.

Why fixed up front and stored: the evaluation may span ticks and crashes, while a golden set may be replaced
or new data may arrive meanwhile; freezing the questions in the evaluation blob keeps every answer comparable
and makes resuming trivial (the questions with no answer yet).

Which conversations (the gate set): the model's golden set when its owner provides one; otherwise the
held-out split the champion was trained beside (``run_split_blob(champion, "test")``): the gate asks whether
the new version got worse at what the live one already did, and new data cannot redefine "correct" on its
own. With no champion, the run's own held-out split. A conversation is held out by its hash, in every file, so
none of these was trained on by either side. Beside the gate set, the challenger also answers up to as many of
its own held-out conversations that the champion's split does not have: its score on what is new in its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.evaluation.examples import Selection
from shared.evaluation.runner import CHALLENGER, CHAMPION
from shared.evaluation.sources import golden_blob, read_golden, read_split
from shared.timeutil import iso

if TYPE_CHECKING:
    from shared.ledger import RunRecord
    from shared.settings import Settings

__all__ = ["GOLDEN", "HELD_OUT_CHAMPION", "HELD_OUT_OWN", "Contestant", "plan_evaluation"]

GOLDEN, HELD_OUT_CHAMPION, HELD_OUT_OWN = "golden", "champion_held_out", "own_held_out"


@dataclass(frozen=True)
class Contestant:
    """A deployment answering the evaluation: the version it serves and the run that trained it."""

    version: str
    run_id: str
    deployment: str

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "run_id": self.run_id, "deployment": self.deployment}


def _rows(selection: Selection, kind: str) -> list[dict[str, Any]]:
    return [{**example.as_dict(), "set": kind, CHAMPION: None, CHALLENGER: None} for example in selection.examples]


def plan_evaluation(
    settings: Settings,
    *,
    rollout: str,
    challenger_run: RunRecord,
    challenger: Contestant,
    champion_run: RunRecord | None,
    champion: Contestant | None,
) -> dict[str, Any]:
    """The evaluation record with every question and no answer yet (see ``shared.evaluation.runner``)."""
    from shared.runs.submit import run_split_blob

    limit = settings.eval_max_examples
    model = challenger_run.model
    golden, golden_report = read_golden(settings, model, limit)
    source: dict[str, Any]
    champion_ids: set[str] = set()
    if golden is not None and golden.examples:
        gate = golden
        source = {"kind": GOLDEN, "blob": golden_blob(model), **golden.report(), "golden": golden_report}
    else:
        gate, source = Selection(), {}
        if champion_run is not None:
            blob = run_split_blob(champion_run, "test")
            found = read_split(settings, blob, limit, collect_ids=True)
            if found is not None:
                gate, champion_ids = found, found.ids or set()
                source = {"kind": HELD_OUT_CHAMPION, "blob": blob, "run_id": champion_run.run_id, **found.report()}
            else:
                source = {"missing": blob}
        if not source.get("kind"):
            blob = run_split_blob(challenger_run, "test")
            gate = read_split(settings, blob, limit) or Selection()
            source.update(kind=HELD_OUT_OWN, blob=blob, run_id=challenger_run.run_id, **gate.report())
        if golden_report is not None:
            source["golden"] = golden_report  # present but unusable: its report says why
    examples = _rows(gate, "gate")
    new_rows: dict[str, Any] | None = None
    if source["kind"] != HELD_OUT_OWN:
        if champion_run is not None and source["kind"] == GOLDEN:
            ids = read_split(settings, run_split_blob(champion_run, "test"), 0, collect_ids=True)
            champion_ids = (ids.ids or set()) if ids is not None else set()
        own = run_split_blob(challenger_run, "test")
        exclude = champion_ids | {example.id for example in gate.examples}
        fresh = read_split(settings, own, limit, exclude)
        if fresh is not None:
            new_rows = {"blob": own, **fresh.report()}
            examples += _rows(fresh, "new")
    return {
        "model": model,
        "run_id": challenger_run.run_id,
        "version": challenger.version,
        "rollout": rollout,
        "started_at": iso(),
        "settings": {
            "max_examples": limit,
            "max_new_tokens": settings.eval_max_new_tokens,
            "concurrency": settings.eval_concurrency,
            "timeout_seconds": settings.eval_timeout_seconds,
        },
        "source": source,
        "new_rows": new_rows,
        CHAMPION: champion.as_dict() if champion is not None else None,
        CHALLENGER: challenger.as_dict(),
        "examples": examples,
    }
