"""Job events reach the app the way they do in Azure: a real local job publishes its event with azure-eventgrid
to the devhost's Event Grid webhook, the devhost runs ``on_ml_job_event`` (decoded by the worker's own
converter), and the run moves on. Foreign and malformed deliveries are acknowledged and change nothing.

The job here fails fast on purpose (its training split has no usable conversation), so no training time is spent."""

from __future__ import annotations

import json

import httpx
import pytest

from devhost.testing import DevHostProcess
from shared.runs.submit import start_run_for_dataset
from tests.conftest import SHARED_DIR
from tests.integration.test_runs_support import (
    UNTRAINABLE,
    make_context,
    prepare_dataset,
    run_of,
    shutdown_backend,
    wait_for,
)

WEBHOOK = "/runtime/webhooks/eventgrid?functionName=on_ml_job_event"
EVENTS = SHARED_DIR / "contracts" / "events"


def test_job_event_through_the_devhost_webhook(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with DevHostProcess(env={**app_env, "RECONCILE_SCHEDULE": "0 0 0 1 1 *"}) as host:
        ctx = make_context(monkeypatch, AUTOTUNE_HOST_URL=host.url)
        try:
            dataset = prepare_dataset(ctx, "broken-bot", seed=31, train_rows=UNTRAINABLE)
            run = start_run_for_dataset(ctx.ledger, dataset, ctx)
            assert run.state == "submitted"
            failed = wait_for(
                lambda: (found := run_of(ctx, run)).state == "failed" and found, 120, "the Failed event to arrive"
            )
            assert "no usable conversation" in failed.error
            assert failed.details["reported_by"] == "event Microsoft.MachineLearningServices.RunStatusChanged"
            host.wait_for_log("on_ml_job_event")

            # Foreign-workspace deliveries in both schemas, and garbage: acknowledged, nothing changes.
            with httpx.Client(base_url=host.url, timeout=30) as http:
                for name in ("aml-run-completed.pipeline.eventgrid.json", "aml-run-completed.pipeline.cloudevent.json"):
                    body = json.loads((EVENTS / name).read_text())
                    response = http.post(WEBHOOK, json=body, headers={"aeg-event-type": "Notification"})
                    assert response.status_code < 300, response.text
                junk = [
                    {
                        "id": "1",
                        "eventType": "Microsoft.MachineLearningServices.RunCompleted",
                        "subject": "x",
                        "eventTime": "2026-11-20T10:42:17Z",
                        "dataVersion": "2",
                        "data": {"runId": ""},
                    }
                ]
                response = http.post(WEBHOOK, json=junk, headers={"aeg-event-type": "Notification"})
                assert response.status_code < 300, response.text
                # The reconcile timer, run by hand the way the Functions admin API does it.
                response = http.post("/admin/functions/reconcile", json={"input": ""})
                assert response.status_code == 202, response.text
            host.wait_for_log("Executed 'Functions.reconcile' (Succeeded")
            assert run_of(ctx, run).timeline == failed.timeline
        finally:
            shutdown_backend(ctx)
