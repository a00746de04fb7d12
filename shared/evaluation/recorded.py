"""A sleeping champion's recorded answers: what it said when it was evaluated before, standing in for asking it.

Why: a model asleep has no deployment, so on wake a new version could only be judged against
``PROMOTION_MIN_SCORE``, and a version worse than the one that slept could take its traffic. Redeploying the
champion just to ask it would bill GPU time and keep whoever woke the model waiting. But every evaluation blob
keeps each example's answer and scores per side, with the example's id (a hash of the whole conversation, the
same in every file) and the generation settings; and the same weights with greedy decoding and the same
``max_new_tokens`` give the same answer to the same conversation. So the champion version's answers from an
earlier evaluation (as the challenger of its own run's evaluation, or as the champion of a later one) are its
answers now, compared paired, example by example, exactly as a live champion's.

Which record: an evaluation of this model, found through its runs' ``evaluation.blob``, whose side names the
champion's version and run, that side asked (not itself filled from a record), with the same
``EVAL_MAX_NEW_TOKENS``; of those, the one sharing the most conversations with the gate set (ties: the most
recent). Too few shared (``EVAL_MIN_RECORDED_EXAMPLES``, or all of the gate set when it has fewer): the new
version is judged alone, as before, and the decision's reason says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.evaluation.examples import Example, Selection
from shared.evaluation.runner import CHALLENGER, CHAMPION, EvalStore

if TYPE_CHECKING:
    from shared.ledger import RunRecord
    from shared.settings import Settings

__all__ = ["RECORDED_FROM", "Recorded", "StandIn", "find_recorded", "stand_in"]

MAX_CANDIDATES = 8  # the most recent evaluations read (one blob each), newest first
RECORDED_FROM = "recorded_from"  # on a result copied from a record: the blob it was copied from


@dataclass(frozen=True)
class Recorded:
    """One earlier evaluation in which the champion version answered: ``rows`` by example id."""

    blob: str
    run_id: str  # the run whose evaluation it was
    side: str  # the side the champion version answered on there
    at: str  # when that evaluation was decided
    rows: dict[str, dict[str, Any]]

    def provenance(self, examples: int) -> dict[str, Any]:
        return {"blob": self.blob, "run_id": self.run_id, "side": self.side, "at": self.at, "examples": examples}


@dataclass(frozen=True)
class StandIn:
    """The chosen record and the gate set it answers (its answers under ``answers``), or why there is none."""

    provenance: dict[str, Any]
    selection: Selection | None = None
    answers: dict[str, dict[str, Any]] | None = None
    fallback: str = ""


def _asked(contestant: Any, version: str, run_id: str) -> bool:
    """Did this side of an evaluation ask ``version`` (trained by ``run_id``)? A side copied from a record
    (``recorded``) did not: a copy is never itself a source."""
    return (
        isinstance(contestant, dict)
        and contestant.get("version") == version
        and contestant.get("run_id") == run_id
        and not contestant.get("recorded")
    )


def _load(
    settings: Settings, blob: str, sides: list[str], version: str, run_id: str, at: str
) -> tuple[Recorded | None, int | None]:
    """The champion version's answers in one evaluation blob, and that evaluation's ``max_new_tokens``."""
    record = EvalStore(settings, blob).load()
    if record is None:
        return None, None  # deleted since: nothing to read
    tokens = (record.get("settings") or {}).get("max_new_tokens")
    for side in sides:
        if not _asked(record.get(side), version, run_id):
            continue  # the run's view and its blob disagree: the blob is the truth
        rows = {str(e["id"]): e for e in record.get("examples") or [] if e.get(side) is not None}
        if rows:
            return Recorded(blob, str(record.get("run_id") or ""), side, at, rows), tokens
    return None, tokens


def find_recorded(
    settings: Settings, runs: Iterable[RunRecord], version: str, run_id: str
) -> tuple[list[Recorded], str]:
    """The recorded evaluations of ``version`` (trained by ``run_id``) usable now, newest first, and, when there
    is none, a sentence saying why."""
    named = []
    for run in runs:
        evaluation = run.evaluation or {}
        sides = [side for side in (CHAMPION, CHALLENGER) if _asked(evaluation.get(side), version, run_id)]
        if sides and evaluation.get("blob"):
            named.append((str(evaluation.get("decided_at") or ""), run.run_id, str(evaluation["blob"]), sides))
    found: list[Recorded] = []
    other_tokens: set[int] = set()
    for at, _, blob, sides in sorted(named, reverse=True)[:MAX_CANDIDATES]:
        recorded, tokens = _load(settings, blob, sides, version, run_id, at)
        if recorded is not None and tokens == settings.eval_max_new_tokens:
            found.append(recorded)
        elif recorded is not None and isinstance(tokens, int):
            other_tokens.add(tokens)
    if found:
        return found, ""
    if other_tokens:
        return [], (
            f"its recorded evaluations used another EVAL_MAX_NEW_TOKENS ({', '.join(map(str, sorted(other_tokens)))}; "
            f"now {settings.eval_max_new_tokens})"
        )
    return [], "no evaluation of it is recorded (promoted before the gate kept evaluations, or never evaluated)"


def stand_in(candidates: list[Recorded], source: Selection, limit: int, minimum: int) -> StandIn:
    """The gate set the sleeping champion has answers for: the smallest ids (up to ``limit``) that the record
    sharing most conversations with ``source`` (every askable id of the gate's source, ``source.ids``) has, with
    those answers; or the reason the challenger is judged alone."""
    ids = source.ids or set()
    best: Recorded | None = None
    common: list[str] = []
    for candidate in candidates:  # newest first: an older record must share strictly more to be chosen
        shared = sorted(set(candidate.rows) & ids)[:limit]
        if len(shared) > len(common):
            best, common = candidate, shared
    if best is None:
        return StandIn({}, fallback=f"none of its recorded answers ({len(candidates)} evaluations) is in the gate set")
    available = min(limit, len(ids))
    needed = max(1, min(minimum, available))
    provenance = best.provenance(len(common))
    if len(common) < needed:
        return StandIn(
            provenance,
            fallback=(
                f"its recorded evaluation {best.blob} ({best.at}) shares only {len(common)} of the gate set's "
                f"{available} conversations, fewer than EVAL_MIN_RECORDED_EXAMPLES {minimum} (or the whole gate set "
                "when smaller)"
            ),
        )
    chosen = Selection(
        examples=[Example.from_dict(best.rows[i]) for i in common],
        ids=source.ids,
        rows=source.rows,
        askable=source.askable,
        skipped=source.skipped,
    )
    answers = {i: {**best.rows[i][best.side], RECORDED_FROM: best.blob} for i in common}
    return StandIn(provenance, chosen, answers)
