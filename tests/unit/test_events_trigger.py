"""The trigger hands shared.events exactly what Event Grid sent: both schemas survive the worker's decoding."""

from __future__ import annotations

import json

import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from functions.events import event_dict
from shared.events import parse_event
from tests.conftest import SHARED_DIR

EVENTS = SHARED_DIR / "contracts" / "events"


@pytest.mark.parametrize(
    "name",
    [
        "aml-run-completed.pipeline.eventgrid.json",
        "aml-run-completed.pipeline.cloudevent.json",
        "aml-run-completed.step.eventgrid.json",
        "aml-run-status-changed.failed.eventgrid.json",
    ],
)
def test_worker_decoded_event_parses_like_the_raw_one(name: str) -> None:
    raw = json.loads((EVENTS / name).read_text())[0]
    decoded = EventGridEventInConverter.decode(meta.Datum(json.dumps(raw), "json"), trigger_metadata=None)
    via_trigger = parse_event(event_dict(decoded))
    direct = parse_event(raw)
    assert via_trigger.kind == direct.kind
    assert via_trigger.job_name == direct.job_name
    assert via_trigger.source == direct.source
    assert via_trigger.status == direct.status
    assert via_trigger.run_type == direct.run_type
    assert via_trigger.tags == direct.tags
