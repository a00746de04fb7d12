"""Job event parsing and filtering against the published samples (both schemas, casing variants, step runs,
foreign workspaces, unknown types, malformed events). Pure: no storage, no backend."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.backends.base import JobState
from shared.events import (
    MalformedEventError,
    events_in,
    handle_event,
    ignore_reason,
    parse_event,
)
from tests.conftest import SHARED_DIR

EVENTS = SHARED_DIR / "contracts" / "events"
WORKSPACE = (
    "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-autotune"
    "/providers/Microsoft.MachineLearningServices/workspaces/mlw-autotune"
)


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())[0]


def upper_keys(value: Any) -> Any:
    """The other casing the published samples use (``RunId``, ``RunTags``, ``EventType``...)."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: upper_keys(v) for k, v in value.items()}
    return value


def test_run_completed_eventgrid_schema() -> None:
    event = parse_event(sample("aml-run-completed.pipeline.eventgrid.json"))
    assert event.kind == "runcompleted"
    assert event.job_name == "khaki_ear_4n6mbwp2qz"
    assert event.source == WORKSPACE
    assert event.run_type == "azureml.pipelinerun"
    assert event.job_state == JobState.COMPLETED
    assert ignore_reason(event, WORKSPACE) is None


def test_run_completed_cloudevent_schema() -> None:
    event = parse_event(sample("aml-run-completed.pipeline.cloudevent.json"))
    assert event.kind == "runcompleted"
    assert event.job_name == "khaki_ear_4n6mbwp2qz"
    assert event.source == WORKSPACE
    assert event.time.startswith("2026-11-20T10:42:17")
    assert ignore_reason(event, WORKSPACE) is None


def test_status_changed_failed() -> None:
    event = parse_event(sample("aml-run-status-changed.failed.eventgrid.json"))
    assert event.kind == "runstatuschanged"
    assert event.status == "failed"
    assert event.job_state == JobState.FAILED
    assert ignore_reason(event, WORKSPACE) is None


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Failed", JobState.FAILED),
        ("failed", JobState.FAILED),
        ("CANCELED", JobState.CANCELED),
        ("Cancelled", JobState.CANCELED),
        ("Running", JobState.RUNNING),
        ("Completed", JobState.COMPLETED),
        ("NotStarted", JobState.QUEUED),
    ],
)
def test_status_values_compared_case_insensitively(status: str, state: JobState) -> None:
    raw = sample("aml-run-status-changed.failed.eventgrid.json")
    raw["data"]["runStatus"] = status
    assert parse_event(raw).job_state == state


def test_keys_compared_case_insensitively() -> None:
    raw = upper_keys(sample("aml-run-status-changed.failed.eventgrid.json"))
    assert "RunId" in raw["Data"] and "EventType" in raw
    event = parse_event(raw)
    assert event.job_name == "khaki_ear_4n6mbwp2qz"
    assert event.job_state == JobState.FAILED
    assert ignore_reason(event, WORKSPACE.upper()) is None  # the topic too


def test_null_run_type_and_string_data() -> None:
    raw = sample("aml-run-completed.pipeline.eventgrid.json")
    raw["data"]["runType"] = None
    raw["data"] = json.dumps(raw["data"])
    event = parse_event(raw)
    assert event.run_type == ""
    assert ignore_reason(event, WORKSPACE) is None


def test_run_id_from_subject_when_data_lacks_it() -> None:
    raw = sample("aml-run-completed.pipeline.eventgrid.json")
    del raw["data"]["runId"]
    assert parse_event(raw).job_name == "khaki_ear_4n6mbwp2qz"


def test_step_run_ignored() -> None:
    event = parse_event(sample("aml-run-completed.step.eventgrid.json"))
    reason = ignore_reason(event, WORKSPACE)
    assert reason is not None and "step run" in reason


def test_step_run_recognised_by_parent_tag_alone() -> None:
    raw = sample("aml-run-completed.step.eventgrid.json")
    raw["data"]["runType"] = None
    raw["data"]["runTags"] = {"AzureML.PipelineRunId": "khaki_ear_4n6mbwp2qz"}
    reason = ignore_reason(parse_event(raw), WORKSPACE)
    assert reason is not None and "step run" in reason


def test_foreign_workspace_ignored() -> None:
    raw = sample("aml-run-completed.pipeline.cloudevent.json")
    raw["source"] = raw["source"].replace("mlw-autotune", "someone-else")
    reason = ignore_reason(parse_event(raw), WORKSPACE)
    assert reason is not None and "another workspace" in reason


def test_unknown_event_type_ignored() -> None:
    raw = sample("aml-run-completed.pipeline.eventgrid.json")
    raw["eventType"] = "Microsoft.MachineLearningServices.ModelRegistered"
    raw["data"] = {"modelName": "x"}
    event = parse_event(raw)
    reason = ignore_reason(event, WORKSPACE)
    assert reason is not None and "unknown event type" in reason


def test_blob_created_is_not_a_job_event() -> None:
    event = parse_event(sample("storage-blob-created.eventgrid.json"))
    assert ignore_reason(event, WORKSPACE) is not None


def test_meaningless_status_ignored() -> None:
    raw = sample("aml-run-status-changed.failed.eventgrid.json")
    raw["data"]["runStatus"] = "Canceling"
    reason = ignore_reason(parse_event(raw), WORKSPACE)
    assert reason is not None and "canceling" in reason


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.pop("eventType"), "no eventType"),
        (lambda raw: raw.pop("topic"), "no topic"),
        (lambda raw: raw.update(data=None), "no data"),
        (lambda raw: raw.update(data="not json"), "no data"),
        (lambda raw: (raw["data"].pop("runId"), raw.update(subject="")), "no runId"),
    ],
)
def test_malformed_events_raise(mutate: Any, message: str) -> None:
    raw = copy.deepcopy(sample("aml-run-completed.pipeline.eventgrid.json"))
    mutate(raw)
    with pytest.raises(MalformedEventError, match=message):
        parse_event(raw)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", 42, None, b"\xff"])
def test_garbage_is_malformed(raw: Any) -> None:
    with pytest.raises(MalformedEventError):
        parse_event(raw)


def test_an_event_nested_too_deeply_is_malformed_not_a_crash() -> None:
    """A RecursionError would fail the trigger, and Event Grid would redeliver the poison for 24 hours."""
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedEventError, match="nested too deeply"):
        parse_event(deep)
    raw = copy.deepcopy(sample("aml-run-completed.pipeline.eventgrid.json"))
    raw["data"] = deep  # a data string that does not parse counts as no data
    with pytest.raises(MalformedEventError, match="no data object"):
        parse_event(raw)
    assert handle_event(deep, ctx=object()).action == "malformed"


def test_handle_event_acknowledges_malformed_without_touching_anything() -> None:
    # ctx is never used for a malformed event: no settings, ledger or backend are needed to reject it.
    outcome = handle_event({"eventType": "Microsoft.MachineLearningServices.RunCompleted", "data": {}}, ctx=object())
    assert outcome.action == "malformed"
    assert not outcome.applied


def test_events_in_accepts_arrays_and_single_objects() -> None:
    body = (EVENTS / "aml-run-completed.pipeline.eventgrid.json").read_text()
    assert len(events_in(body)) == 1
    assert len(events_in({"id": "x"})) == 1
