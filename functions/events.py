"""Event Grid trigger for Azure ML job events (see shared/events.py): RunCompleted and RunStatusChanged."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from functions import deps

bp = func.Blueprint()
log = logging.getLogger(__name__)


def event_dict(event: Any) -> dict[str, Any]:
    """The delivered event as plain JSON, in whichever schema it came (EventGridEvent or CloudEvent 1.0)."""
    if isinstance(event, func.EventGridEvent):
        return {
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "eventType": event.event_type,
            "eventTime": event.event_time.isoformat() if event.event_time else None,
            "dataVersion": event.data_version,
            "data": event.get_json(),
        }
    return {
        "specversion": getattr(event, "specversion", "1.0"),
        "id": getattr(event, "id", None),
        "source": getattr(event, "source", None),
        "type": getattr(event, "type", None),
        "subject": getattr(event, "subject", None),
        "time": event.time.isoformat() if getattr(event, "time", None) else None,
        "data": event.get_json(),
    }


@bp.event_grid_trigger(arg_name="event")
def on_ml_job_event(event: func.EventGridEvent) -> None:
    from shared.events import handle_event

    outcome = handle_event(event_dict(event), deps.run_context())
    log.info("job event %s: %s %s", getattr(event, "id", "?"), outcome.action, outcome.reason)
