"""``promote RUN``, ``reject RUN`` against a real loopback server, and how ``status RUN`` shows an evaluation."""

import pytest

from shared.cli import main
from shared.cli.evaluation import render_evaluation
from tests.unit.test_cli_client import _Handler as AppHandler
from tests.unit.test_cli_client import serving

EVALUATION = {
    "policy": "gate",
    "examples": 4,
    "source": {"kind": "champion_held_out", "blob": "datasets/bot/d1/test.jsonl"},
    "champion": {
        "version": "1",
        "rouge_l": 0.6784,
        "token_f1": 0.6951,
        "error_rate": 0.0,
        "p50_ms": 165.0,
        "p95_ms": 211.7,
    },
    "challenger": {
        "version": "2",
        "rouge_l": 0.3081,
        "token_f1": 0.31,
        "error_rate": 0.25,
        "p50_ms": 160.6,
        "p95_ms": 176.8,
    },
    "difference": {"rouge_l": -0.3709, "ci95": [-0.52, -0.22]},
    "new_rows": {"examples": 3, "rouge_l": 0.4, "token_f1": 0.41, "error_rate": 0.0},
    "decision": "held",
    "reason": "mean ROUGE-L 0.308 vs 0.678 for the champion (version 1) over 4 conversations",
    "samples": [
        {
            "question": f"question {n}",
            "reference": f"reference {n}",
            "champion": {"answer": f"champion answer {n}", "rouge_l": 0.9},
            "challenger": {"answer": "", "rouge_l": 0.0, "error": "HTTP 500: boom"}
            if n == 1
            else {"answer": f"challenger answer {n}", "rouge_l": 0.2},
        }
        for n in (1, 2, 3)
    ],
}


def test_status_shows_champion_and_challenger_side_by_side() -> None:
    lines = render_evaluation({"run_id": "bot-2", "state": "held", "evaluation": EVALUATION})
    text = "\n".join(lines)
    assert lines[0].endswith(": HELD") and "champion_held_out" in lines[0]
    assert lines[1].strip() == EVALUATION["reason"]
    header = next(line for line in lines if "champion v1" in line)
    assert header.index("champion v1") < header.index("challenger v2")
    assert any(line.split()[:1] == ["ROUGE-L"] and "0.678" in line and "0.308" in line for line in lines)
    assert any("error rate" in line and "0.0%" in line and "25.0%" in line for line in lines)
    assert any("latency p95" in line and "212 ms" in line and "177 ms" in line for line in lines)
    assert "ROUGE-L -0.371 (95% CI -0.520 .. -0.220)" in text
    assert "new held-out rows of this run (3): ROUGE-L 0.400" in text
    assert text.count("champion:   (0.90) champion answer") == 3
    assert "challenger: (failed: HTTP 500: boom)" in text and "challenger: (0.20) challenger answer 2" in text
    assert lines[-1] == "  to promote it anyway: python -m shared promote bot-2"


def test_status_shows_progress_skips_and_overrides() -> None:
    running = {"deployment": {"evaluation": {"requests": 8, "done": 3}}}
    assert render_evaluation(running) == ["evaluating: 3/8 requests answered"]
    skipped = {"deployment": {"evaluation": {"skipped": "the live version is being redeployed (a wake)"}}}
    assert render_evaluation(skipped) == ["evaluation skipped: the live version is being redeployed (a wake)"]
    assert render_evaluation({"state": "live"}) == []
    overridden = {**EVALUATION, "decision": "overridden", "override": {"at": "T1", "previous_decision": "held"}}
    lines = render_evaluation({"run_id": "bot-2", "state": "live", "evaluation": overridden})
    assert "  overridden: promoted by request at T1 (was held)" in lines
    first = {**EVALUATION, "champion": None, "difference": None, "decision": "awaiting_approval"}
    lines = render_evaluation({"run_id": "bot-3", "state": "awaiting_approval", "evaluation": first})
    assert "champion: none" in "\n".join(lines) and not any(line.startswith("     champion:") for line in lines)
    assert lines[-1] == "  to promote or reject it: python -m shared promote bot-3 | reject bot-3"


class _Handler(AppHandler):
    posted: list[str] = []

    def do_POST(self):
        self.posted.append(self.path)
        if self.path == "/api/runs/bot-2/promote":
            override = {"at": "2026-01-01T00:00:00Z", "previous_decision": "held"}
            self._send(202, {"run_id": "bot-2", "state": "deploying", "registered_version": "2", "override": override})
        elif self.path == "/api/runs/bot-3/reject":
            self._send(
                200, {"run_id": "bot-3", "state": "held", "decision": "rejected", "error": "rejected by request"}
            )
        else:
            self._send(409, {"error": {"code": "run_not_promotable", "message": "run bot-9 is live; only held"}})


@pytest.fixture
def server():
    with serving(_Handler) as url:
        yield url


def test_promote_and_reject_print_what_happened(server, capsys) -> None:
    assert main(["promote", "bot-2", "--url", server]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("bot-2: deploying: version 2 will be deployed") and "had said held" in out
    assert main(["reject", "bot-3", "--url", server]) == 0
    assert capsys.readouterr().out.strip() == "bot-3: held (rejected): rejected by request"
    assert _Handler.posted[-2:] == ["/api/runs/bot-2/promote", "/api/runs/bot-3/reject"]


def test_promoting_a_run_that_is_not_held_says_why(server, capsys) -> None:
    assert main(["promote", "bot-9", "--url", server]) == 1
    err = capsys.readouterr().err
    assert "HTTP 409" in err and "run bot-9 is live" in err
