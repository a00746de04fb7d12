"""The promotion decision: from an evaluation's per-example results to promoted, held or awaiting approval.

Why these rules (``PROMOTION_POLICY=gate``): the question is "is the new version at least as good as what
users get now, on conversations neither was trained on?". A small tolerance (``PROMOTION_MAX_REGRESSION``,
``PROMOTION_MAX_ERROR_INCREASE``) keeps noise on a hundred conversations from holding back every retrain; the
bootstrap interval is reported beside the means so a reader can tell noise from a real change. With no
champion, the challenger must reach ``PROMOTION_MIN_SCORE`` and fail no more requests than the error
tolerance (measured from zero): a first version that cannot answer is never promoted on its ROUGE alone.
A sleeping champion's answers recorded by an earlier evaluation (``shared.evaluation.recorded``) are compared
exactly as a live champion's, and the reason names the record.
``always`` records the same numbers and promotes; ``manual`` records them and waits for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.evaluation import metrics
from shared.evaluation.recorded import RECORDED_FROM
from shared.evaluation.runner import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "AWAITING_APPROVAL",
    "DECISIONS",
    "HELD",
    "OVERRIDDEN",
    "POLICIES",
    "PROMOTED",
    "REJECTED",
    "Thresholds",
    "decide",
    "evaluation_view",
    "summarise_record",
]

POLICIES = ("gate", "always", "manual")
PROMOTED, HELD, AWAITING_APPROVAL, OVERRIDDEN, REJECTED = (
    "promoted",
    "held",
    "awaiting_approval",
    "overridden",
    "rejected",
)
DECISIONS = (PROMOTED, HELD, AWAITING_APPROVAL, OVERRIDDEN, REJECTED)
SAMPLES = 3
SAMPLE_CHARS = 400
_EPSILON = 1e-9  # scores are rounded to 4 places; a tie must not fail on float noise


@dataclass(frozen=True)
class Thresholds:
    max_regression: float = 0.02
    max_error_increase: float = 0.02
    min_score: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.promotion_max_regression, settings.promotion_max_error_increase, settings.promotion_min_score
        )


def _results(examples: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    return [example[side] for example in examples if example.get(side) is not None]


def summarise_record(record: dict[str, Any]) -> dict[str, Any]:
    """Overall numbers of a finished evaluation: each side's summary on the gate set, the paired difference,
    and the challenger's summary on the held-out rows new in its run."""
    examples = record.get("examples") or []
    gate = [e for e in examples if e.get("set") == "gate"]
    new = [e for e in examples if e.get("set") == "new"]
    out: dict[str, Any] = {"examples": len(gate), "champion": None, "difference": None, "new_rows": None}
    out["challenger"] = {**(record.get(CHALLENGER) or {}), **metrics.summarise(_results(gate, CHALLENGER))}
    if record.get(CHAMPION):
        out["champion"] = {**record[CHAMPION], **metrics.summarise(_results(gate, CHAMPION))}
        paired = [e for e in gate if e.get(CHAMPION) is not None and e.get(CHALLENGER) is not None]
        out["difference"] = metrics.paired_bootstrap(
            [float(e[CHAMPION]["rouge_l"]) for e in paired], [float(e[CHALLENGER]["rouge_l"]) for e in paired]
        )
    if new:
        out["new_rows"] = metrics.summarise(_results(new, CHALLENGER))
    return out


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _interval(difference: dict[str, Any] | None) -> str:
    if not difference or difference.get("rouge_l") is None:
        return ""
    low, high = difference["ci95"]
    return f" (difference {difference['rouge_l']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}])"


def gate_verdict(summary: dict[str, Any], limits: Thresholds) -> tuple[bool, str]:
    """Would the gate promote? With the sentence that says why, numbers included."""
    challenger, champion = summary["challenger"], summary.get("champion")
    count = summary["examples"]
    if not count:
        return True, "no held-out conversation could be asked (empty test split and no golden set): gate skipped"
    score, errors = challenger["rouge_l"] or 0.0, challenger["error_rate"] or 0.0
    if champion is None:
        if score + _EPSILON < limits.min_score:
            return False, (
                f"no champion; mean ROUGE-L {score:.3f} over {count} conversations is below PROMOTION_MIN_SCORE "
                f"{limits.min_score:g}"
            )
        if errors > limits.max_error_increase + _EPSILON:
            return False, (
                f"no champion; {_pct(errors)} of {count} requests failed, more than PROMOTION_MAX_ERROR_INCREASE "
                f"{_pct(limits.max_error_increase)}"
            )
        return True, (
            f"no champion; mean ROUGE-L {score:.3f} over {count} conversations reaches PROMOTION_MIN_SCORE "
            f"{limits.min_score:g}, error rate {_pct(errors)}"
        )
    base, base_errors = champion["rouge_l"] or 0.0, champion["error_rate"] or 0.0
    versus = f"version {champion.get('version') or '?'}{_recorded_note(champion.get('recorded'))}"
    if errors - base_errors > limits.max_error_increase + _EPSILON:
        return False, (
            f"error rate {_pct(errors)} vs {_pct(base_errors)} for the champion ({versus}) over {count} "
            f"conversations: higher by more than PROMOTION_MAX_ERROR_INCREASE {_pct(limits.max_error_increase)}"
        )
    if base - score > limits.max_regression + _EPSILON:
        return False, (
            f"mean ROUGE-L {score:.3f} vs {base:.3f} for the champion ({versus}) over {count} conversations"
            f"{_interval(summary.get('difference'))}: lower by more than PROMOTION_MAX_REGRESSION "
            f"{limits.max_regression:g}"
        )
    return True, (
        f"mean ROUGE-L {score:.3f} vs {base:.3f} for the champion ({versus}) over {count} conversations"
        f"{_interval(summary.get('difference'))}, error rate {_pct(errors)} vs {_pct(base_errors)}: within "
        f"PROMOTION_MAX_REGRESSION {limits.max_regression:g} and PROMOTION_MAX_ERROR_INCREASE "
        f"{_pct(limits.max_error_increase)}"
    )


def _recorded_note(recorded: dict[str, Any] | None) -> str:
    """How a sleeping champion's side was filled: which earlier evaluation, when, how many conversations."""
    if not recorded:
        return ""
    return (
        f", asleep: its answers recorded by the evaluation {recorded.get('blob')} of {recorded.get('at') or '?'}, "
        f"{recorded.get('examples')} conversations in common"
    )


def decide(policy: str, summary: dict[str, Any], limits: Thresholds) -> tuple[str, str]:
    """``(decision, reason)`` under ``policy``; the reason always carries the gate's own verdict."""
    passes, why = gate_verdict(summary, limits)
    if policy == "always":
        return PROMOTED, f"PROMOTION_POLICY=always: promoted whatever the scores ({why})"
    if policy == "manual":
        verdict = "would pass" if passes else "would not pass"
        return AWAITING_APPROVAL, f"PROMOTION_POLICY=manual: waiting for approval; the gate {verdict}: {why}"
    return (PROMOTED, why) if passes else (HELD, why)


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _shown(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    shown = {"answer": _cut(result.get("answer") or ""), "rouge_l": result.get("rouge_l")}
    if not result.get("ok"):
        shown["error"] = result.get("error") or "failed"
    return shown


def samples(record: dict[str, Any], count: int = SAMPLES) -> list[dict[str, Any]]:
    """A few questions with both answers, where the two differ most (ties: by id, so always the same ones)."""
    gate = [e for e in record.get("examples") or [] if e.get("set") == "gate" and e.get(CHALLENGER)]

    def gap(example: dict[str, Any]) -> float:
        champion = example.get(CHAMPION) or {}
        return abs(float(example[CHALLENGER].get("rouge_l") or 0) - float(champion.get("rouge_l") or 0))

    chosen = sorted(gate, key=lambda e: (-gap(e), e["id"]))[:count]
    return [
        {
            "id": e["id"],
            "question": _cut(e["messages"][-1]["content"]),
            "reference": _cut(e["reference"]),
            CHAMPION: _shown(e.get(CHAMPION)),
            CHALLENGER: _shown(e.get(CHALLENGER)),
        }
        for e in chosen
    ]


def evaluation_view(
    record: dict[str, Any], summary: dict[str, Any], decision: str, reason: str, blob: str
) -> dict[str, Any]:
    """What the run keeps (``RunRecord.evaluation``, ``GET /api/runs/{id}``): small enough for a table row."""
    keys = ("version", "run_id", "deployment", "rouge_l", "token_f1", "error_rate", "p50_ms", "p95_ms", "errors")

    def side(values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is None:
            return None
        recorded = {"recorded": values["recorded"]} if values.get("recorded") else {}
        return {**{key: values.get(key) for key in keys}, **recorded}

    return {
        "policy": record.get("policy"),
        "examples": summary["examples"],
        "source": record.get("source"),
        CHAMPION: side(summary.get(CHAMPION)),
        CHALLENGER: side(summary.get(CHALLENGER)),
        "difference": summary.get("difference"),
        "new_rows": summary.get("new_rows"),
        "decision": decision,
        "reason": reason,
        "samples": samples(record),
        "blob": blob,
        "started_at": record.get("started_at"),
        "decided_at": record.get("finished_at"),
        "requests": sum(  # asked, not copied from a record
            1
            for e in record.get("examples") or []
            for s in (CHAMPION, CHALLENGER)
            if e.get(s) and not e[s].get(RECORDED_FROM)
        ),
    }
