"""The whole job on the local backend, through the real devhost, as a user meets it.

upload (with bad lines) → report → run → local training → job event → registration → deployment → smoke test →
chat through the real ``openai`` client → idle sweep → sleep → wake → served again. The stages are the ones
``make demo`` narrates (scripts/journey.py); a failure names the stage that broke.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localml.state import alive
from scripts.journey import FAST_ENV, SAMPLE, Journey
from scripts.stack import LocalStack
from tests.isolation import isolated_env

pytestmark = pytest.mark.slow


def _with_bad_lines(tmp_path: Path) -> Path:
    """The sample plus a few more faulty lines, so the report's accounting is checked end to end."""
    data = tmp_path / "support-e2e.jsonl"
    extra = [
        "{broken json",
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}),
    ]
    data.write_bytes(SAMPLE.read_bytes().rstrip(b"\n") + b"\n" + "\n".join(extra).encode() + b"\n")
    return data


def test_drop_data_get_a_live_model_that_sleeps_and_wakes(azurite: str, tmp_path: Path):
    env = {**FAST_ENV, **isolated_env(azurite, tmp_path / "state", GATEWAY_API_KEYS="e2e-key")}
    env["ENDPOINT_IDLE_MINUTES"] = "0.5"
    data = _with_bad_lines(tmp_path)
    lines = [line for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    with LocalStack(env, log_path=tmp_path / "devhost.log") as stack:
        journey = Journey(stack, "e2e-bot", "e2e-key", say=lambda _: None)

        accepted = journey.upload_dataset(data)
        assert accepted["dataset_id"]

        dataset = journey.wait_prepared()
        report = dataset["report"]
        assert report["total_lines"] == len(lines)
        assert report["train"] + report["test"] + report["rejected"] == report["total_lines"]
        assert report["reasons"]["invalid_json"] >= 2  # the sample's own bad line and ours
        assert report["reasons"]["unknown_role"] >= 2
        reasons = report["reasons"]
        assert reasons.get("too_few_messages", 0) + reasons.get("no_assistant_message", 0) >= 2

        run = journey.wait_trained()
        assert run["job"]["name"]
        assert run["metrics"].get("eval_loss") is not None

        view = journey.wait_live()
        assert view["live_version"] == "1" and view["endpoint"]
        run = journey.get(f"/api/runs/{run['run_id']}")
        states = [step["state"] for step in run["timeline"]]
        assert states[:2] == ["waiting", "queued"] and states[-1] == "live", states
        assert run["registered"]["version"] == "1"

        answer = journey.chat("What are your opening hours?")
        assert answer.strip()

        slept = journey.wait_asleep()
        assert slept["endpoint"] is None and slept["live_version"] == "1"

        again = journey.wake_by_request()
        assert again.strip()
        assert journey.facts["wake_retry_after"]
    leftovers = [record for record in _process_records(tmp_path / "state") if alive(record)]
    assert leftovers == [], f"stage 'stop' failed: processes left behind: {leftovers}"


def _process_records(state_dir: Path) -> list[dict]:
    """Every child process the local backend recorded (pid + start time) in its state files."""
    found: list[dict] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "pid" in value and "start_time" in value:
                found.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in state_dir.rglob("*.json"):
        try:
            walk(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, OSError):
            continue
    return found
