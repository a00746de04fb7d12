"""Through the real local host: upload over HTTP → the devhost's blob trigger fires → the dataset is prepared."""

from __future__ import annotations

import time

import httpx

from devhost.testing import DevHostProcess
from tests.conftest import ROOT
from tests.integration import ingest_helpers

MODEL = "support-bot"
container = ingest_helpers.container  # fixture
SAMPLE = ROOT / "examples" / "support-bot.jsonl"


def test_upload_over_http_is_prepared_by_the_blob_trigger(app_env, container, tmp_path):
    env = {**app_env, "LOCAL_BASE_MODEL": str(tmp_path / "no-such-model")}  # the run fails fast: nothing trains
    with DevHostProcess(env=env, args=["--blob-poll-seconds", "0.2"]) as host, httpx.Client(base_url=host.url) as http:
        answer = http.post(
            f"/api/models/{MODEL}/datasets",
            content=SAMPLE.read_bytes(),
            headers={"content-type": "application/x-ndjson", "x-filename": SAMPLE.name},
        )
        assert answer.status_code == 202, answer.text
        status_url = answer.json()["status_url"]
        deadline = time.monotonic() + 90
        # Prepared, then gathered into the model's run (the dataset names it a moment later).
        while (state := http.get(status_url).json())["state"] in ("pending", "preparing") or (
            state["state"] == "prepared" and not state["run_id"]
        ):
            assert time.monotonic() < deadline, f"not prepared in time; host log:\n{host.log()[-3000:]}"
            time.sleep(0.3)
        assert state["state"] == "prepared", state
        assert state["report"]["reasons"]["duplicate"] == 1
        assert state["run_id"]
        again = http.post(f"/api/models/{MODEL}/datasets", content=SAMPLE.read_bytes())
        assert again.status_code == 200 and again.json()["run_id"] == state["run_id"]
        listing = http.get(f"/api/models/{MODEL}/datasets").json()["datasets"]
        assert [d["dataset_id"] for d in listing] == [state["dataset_id"]]
        host.wait_for_log("Executed 'Functions.ingest_blob' (Succeeded")
