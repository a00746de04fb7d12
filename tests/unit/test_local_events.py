"""Job events built by the local backend have the shape of Azure ML's (../shared/contracts/events)."""

from __future__ import annotations

import json

from localml.events import RUN_COMPLETED, RUN_STATUS_CHANGED, build_event, experiment_id
from shared.backends.base import RUN_TAG
from tests.conftest import SHARED_DIR

JOB = {"name": "khaki_ear_4n6mbwp2qz", "run_id": "demo-abc", "model": "demo", "dataset_id": "abc", "experiment": "exp"}
WS = "/subscriptions/0/resourceGroups/local/providers/Microsoft.MachineLearningServices/workspaces/local"


def sample(name: str) -> dict:
    return json.loads((SHARED_DIR / "contracts" / "events" / name).read_text())[0]


def test_completed_event_matches_the_azure_sample() -> None:
    event = build_event(JOB, "completed", WS)
    reference = sample("aml-run-completed.pipeline.eventgrid.json")
    assert event["event_type"] == reference["eventType"] == RUN_COMPLETED
    assert set(event["data"]) == set(reference["data"])
    assert event["data"]["runType"] == reference["data"]["runType"]
    assert set(reference["data"]["runProperties"]) <= set(event["data"]["runProperties"])
    assert event["topic"] == WS and event["data"]["runId"] == JOB["name"]
    assert event["subject"] == f"experiments/{event['data']['experimentId']}/runs/{JOB['name']}"
    assert event["data"]["runTags"][RUN_TAG] == "demo-abc"


def test_failed_and_canceled_events_carry_the_run_status() -> None:
    reference = sample("aml-run-status-changed.failed.eventgrid.json")
    failed = build_event(JOB, "failed", WS)
    assert failed["event_type"] == reference["eventType"] == RUN_STATUS_CHANGED
    assert set(failed["data"]) == set(reference["data"]) and failed["data"]["runStatus"] == "Failed"
    assert build_event(JOB, "canceled", WS)["data"]["runStatus"] == "Canceled"


def test_experiment_id_is_a_stable_guid_per_workspace_and_name() -> None:
    assert experiment_id(WS, "exp") == experiment_id(WS, "exp") != experiment_id(WS, "other")
    assert len(experiment_id(WS, "exp")) == 36
