"""How ``status RUN`` shows a run's evaluation: champion and challenger side by side, the difference with its
interval, the decision and why, and three example answers from each (where the two differ most)."""

from __future__ import annotations

from typing import Any

ROWS = (
    ("ROUGE-L", "rouge_l", "{:.3f}"),
    ("token F1", "token_f1", "{:.3f}"),
    ("error rate", "error_rate", "pct"),
    ("latency p50", "p50_ms", "{:.0f} ms"),
    ("latency p95", "p95_ms", "{:.0f} ms"),
)
WAITING = {"held": "promote it anyway", "awaiting_approval": "promote or reject it"}


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "pct":
        return f"{float(value) * 100:.1f}%"
    return fmt.format(float(value))


def _title(side: dict[str, Any] | None, role: str) -> str:
    if not side:
        return f"{role}: none"
    return f"{role} v{side.get('version') or '?'}"


def _answer(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if result.get("error"):
        return f"(failed: {result['error']})"
    return f"({float(result.get('rouge_l') or 0):.2f}) {result.get('answer', '')}"


def render_evaluation(detail: dict[str, Any]) -> list[str]:
    """Lines for ``status RUN``: the evaluation when there is one, or its progress while it runs."""
    evaluation = detail.get("evaluation")
    progress = (detail.get("deployment") or {}).get("evaluation") or {}
    if not evaluation:
        if progress.get("skipped"):
            return [f"evaluation skipped: {progress['skipped']}"]
        if progress.get("requests") is not None:
            return [f"evaluating: {progress.get('done', 0)}/{progress['requests']} requests answered"]
        return []
    source = evaluation.get("source") or {}
    lines = [
        f"evaluation ({evaluation.get('policy')}, {evaluation.get('examples')} conversations, "
        f"{source.get('kind', '?')}: {source.get('blob', '?')}): {str(evaluation.get('decision', '?')).upper()}",
        f"  {evaluation.get('reason', '')}",
    ]
    champion, challenger = evaluation.get("champion"), evaluation.get("challenger")
    recorded = (champion or {}).get("recorded")
    if recorded:
        lines.append(
            f"  champion v{champion.get('version') or '?'} was asleep, not asked: its answers recorded by the "
            f"evaluation {recorded.get('blob')} (run {recorded.get('run_id')}, {recorded.get('at')}), "
            f"{recorded.get('examples')} conversations in common"
        )
    lines.append(f"  {'':<14}{_title(champion, 'champion'):<18}{_title(challenger, 'challenger')}")
    for label, key, fmt in ROWS:
        left = _cell((champion or {}).get(key), fmt) if champion else ""
        lines.append(f"  {label:<14}{left:<18}{_cell((challenger or {}).get(key), fmt)}")
    difference = evaluation.get("difference") or {}
    if difference.get("rouge_l") is not None:
        low, high = difference["ci95"]
        lines.append(f"  difference    ROUGE-L {difference['rouge_l']:+.3f} (95% CI {low:+.3f} .. {high:+.3f})")
    new = evaluation.get("new_rows")
    if new:
        lines.append(
            f"  new held-out rows of this run ({new.get('examples')}): ROUGE-L {_cell(new.get('rouge_l'), '{:.3f}')}, "
            f"token F1 {_cell(new.get('token_f1'), '{:.3f}')}, error rate {_cell(new.get('error_rate'), 'pct')}"
        )
    for number, sample in enumerate(evaluation.get("samples") or [], 1):
        lines.append(f"  {number}. {sample.get('question', '')}")
        lines.append(f"     reference:  {sample.get('reference', '')}")
        if champion:
            lines.append(f"     champion:   {_answer(sample.get('champion'))}")
        lines.append(f"     challenger: {_answer(sample.get('challenger'))}")
    override = evaluation.get("override")
    if override:
        lines.append(
            f"  overridden: promoted by request at {override.get('at')} (was {override.get('previous_decision')})"
        )
    if evaluation.get("rejected_at"):
        lines.append(f"  rejected by request at {evaluation['rejected_at']}")
    action = WAITING.get(str(detail.get("state")))
    if action:
        run = detail.get("run_id", "RUN")
        lines.append(
            f"  to {action}: python -m shared promote {run}" + (f" | reject {run}" if "reject" in action else "")
        )
    return lines
