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

A champion that is not deployed (the model slept) is not asked: when one of its earlier evaluations recorded
its answers to enough of the gate set (``shared.evaluation.recorded``), the gate set is those conversations and
its side is filled from that record before anything is asked; otherwise the challenger is judged alone, on its
own held-out split, and ``source["champion_absent"]`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.evaluation.examples import Selection
from shared.evaluation.recorded import Recorded, StandIn, stand_in
from shared.evaluation.runner import CHALLENGER, CHAMPION
from shared.evaluation.sources import golden_blob, read_golden, read_split
from shared.timeutil import iso

if TYPE_CHECKING:
    from shared.ledger import RunRecord
    from shared.settings import Settings

__all__ = ["GOLDEN", "HELD_OUT_CHAMPION", "HELD_OUT_OWN", "Asleep", "Contestant", "plan_evaluation"]

GOLDEN, HELD_OUT_CHAMPION, HELD_OUT_OWN = "golden", "champion_held_out", "own_held_out"


@dataclass(frozen=True)
class Contestant:
    """A deployment answering the evaluation: the version it serves and the run that trained it."""

    version: str
    run_id: str
    deployment: str

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "run_id": self.run_id, "deployment": self.deployment}


@dataclass(frozen=True)
class Asleep:
    """The live version, not deployed (the model slept): its usable recorded evaluations, or why there is none."""

    version: str
    run_id: str
    recorded: list[Recorded]
    missing: str = ""


def _rows(selection: Selection, kind: str) -> list[dict[str, Any]]:
    return [{**example.as_dict(), "set": kind, CHAMPION: None, CHALLENGER: None} for example in selection.examples]


def _gate_source(
    settings: Settings,
    challenger_run: RunRecord,
    champion_run: RunRecord | None,
    golden: tuple[Selection | None, dict[str, Any] | None],
) -> tuple[Selection, dict[str, Any], set[str]]:
    """The gate set, where it came from, and (from the champion's held-out split) every askable id there."""
    from shared.runs.submit import run_split_blob

    limit, model = settings.eval_max_examples, challenger_run.model
    selection, golden_report = golden
    if selection is not None and selection.examples:
        return (
            selection,
            {"kind": GOLDEN, "blob": golden_blob(model), **selection.report(), "golden": golden_report},
            set(),
        )
    gate, source, champion_ids = Selection(), {}, set()
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
    return gate, source, champion_ids


def _stand_in(
    settings: Settings, challenger_run: RunRecord, champion_run: RunRecord | None, golden: Any, asleep: Asleep
) -> tuple[StandIn, tuple[Selection, dict[str, Any], set[str]] | None]:
    """The sleeping champion's recorded answers on the gate set it would have been asked live (with that
    gate's source), or why the challenger is judged alone."""
    if champion_run is None:
        return StandIn({}, fallback=f"the run that trained it ({asleep.run_id or '?'}) is not recorded"), None
    found = _gate_source(settings, challenger_run, champion_run, golden)
    gate, source, _ = found
    if source["kind"] == HELD_OUT_OWN:
        return StandIn({}, fallback=f"its held-out split {source.get('missing', '?')} is missing"), None
    if not asleep.recorded:
        return StandIn({}, fallback=asleep.missing), None
    limit, minimum = settings.eval_max_examples, settings.eval_min_recorded_examples
    return stand_in(asleep.recorded, gate, limit, minimum), found


def plan_evaluation(
    settings: Settings,
    *,
    rollout: str,
    challenger_run: RunRecord,
    challenger: Contestant,
    champion_run: RunRecord | None,
    champion: Contestant | None,
    asleep: Asleep | None = None,
) -> dict[str, Any]:
    """The evaluation record with every question and no answer yet (see ``shared.evaluation.runner``), except
    a sleeping champion's answers taken from its record (``asleep``; ``champion_run`` is its run)."""
    from shared.runs.submit import run_split_blob

    limit = settings.eval_max_examples
    model = challenger_run.model
    golden = read_golden(settings, model, limit, collect_ids=asleep is not None)
    side = champion.as_dict() if champion is not None else None
    answers: dict[str, dict[str, Any]] = {}
    alone: StandIn | None = None  # a sleeping champion with no usable record: why
    if asleep is not None:
        standin, found = _stand_in(settings, challenger_run, champion_run, golden, asleep)
        if found is not None and standin.selection is not None and standin.answers:
            (_, source, champion_ids), gate, answers = found, standin.selection, standin.answers
            side = {
                "version": asleep.version,
                "run_id": asleep.run_id,
                "deployment": "",
                "recorded": standin.provenance,
            }
            source["recorded"] = standin.provenance
        else:
            alone = standin
    if not answers:
        gate, source, champion_ids = _gate_source(settings, challenger_run, champion_run if champion else None, golden)
    if asleep is not None and alone is not None:
        source["recorded"] = {**alone.provenance, "fallback": alone.fallback}
        source["champion_absent"] = (
            f"version {asleep.version} is not deployed (the model was asleep) and {alone.fallback}"
        )
    examples = _rows(gate, "gate")
    for row in examples:
        row[CHAMPION] = answers.get(row["id"])
    new_rows: dict[str, Any] | None = None
    if source["kind"] != HELD_OUT_OWN:
        holder = champion_run if (champion is not None or answers) else None
        if holder is not None and source["kind"] == GOLDEN:
            ids = read_split(settings, run_split_blob(holder, "test"), 0, collect_ids=True)
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
        CHAMPION: side,
        CHALLENGER: challenger.as_dict(),
        "examples": examples,
    }
