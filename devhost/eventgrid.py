"""Event Grid webhook deliveries: the handshake, the event array, and decoding like the Python worker.

Why decode with the worker's own converter (``azure.functions.eventgrid.EventGridEventInConverter``): a function
then receives exactly the ``func.EventGridEvent`` or ``func.CloudEvent`` it gets in Azure (CloudEvents 1.0 is
recognised by ``specversion``), including how ``eventTime`` with seven fractional digits parses.
"""

from __future__ import annotations

import json
from typing import Any

from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


class BadDelivery(ValueError):
    """The request is not an Event Grid delivery; the message says what is wrong and where (400)."""


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a delivery: a JSON array of event objects (a single CloudEvent object is accepted too)."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise BadDelivery("body is not UTF-8 text") from None
    except RecursionError:
        raise BadDelivery("body is not JSON: it is nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise BadDelivery(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        raise BadDelivery("body must be a non-empty JSON array of events")
    for index, event in enumerate(document):
        if not isinstance(event, dict):
            raise BadDelivery(f"event [{index}] is not a JSON object")
        if "specversion" in event:
            missing = [key for key in ("id", "source", "type") if not event.get(key)]
        else:
            missing = [key for key in ("id", "eventType", "subject") if event.get(key) is None]
        if missing:
            raise BadDelivery(f"event [{index}] lacks {', '.join(missing)}")
    return document


def event_type(event: dict[str, Any]) -> str:
    return str(event.get("type") if "specversion" in event else event.get("eventType"))


def validation_code(events: list[dict[str, Any]]) -> str:
    """The code to echo for a ``SubscriptionValidation`` handshake."""
    data = events[0].get("data")
    code = data.get("validationCode") if isinstance(data, dict) else None
    if not code:
        raise BadDelivery("SubscriptionValidation event [0] has no data.validationCode")
    return str(code)


def decode(event: dict[str, Any]) -> Any:
    """``func.EventGridEvent`` or ``func.CloudEvent``, exactly as the worker decodes one array element."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata=None)
