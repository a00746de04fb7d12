"""Lifecycle notifications: the app's own events (run succeeded/failed, model deployed/slept/woke/drifted).

Published to the Event Grid topic in ``EVENTS_TOPIC_ENDPOINT`` (when set) so a team can route them to mail
or chat. Publishing never breaks the caller: a failure is logged and the step goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.settings import Settings

log = logging.getLogger(__name__)

EVENT_PREFIX = "Autotune."
RUN_SUCCEEDED = EVENT_PREFIX + "RunSucceeded"
RUN_FAILED = EVENT_PREFIX + "RunFailed"
RUN_HELD = EVENT_PREFIX + "RunHeld"  # the promotion gate stopped a version, or it awaits approval
MODEL_DEPLOYED = EVENT_PREFIX + "ModelDeployed"
MODEL_SLEPT = EVENT_PREFIX + "ModelSlept"
MODEL_WOKE = EVENT_PREFIX + "ModelWoke"
MODEL_DRIFTED = EVENT_PREFIX + "ModelDrifted"  # the platform differed from the ledger and was repaired


def publish(settings: Settings, event_type: str, subject: str, data: dict[str, Any]) -> bool:
    """Send one EventGridEvent; True when sent, False when not configured or it failed (logged)."""
    log.info("lifecycle event %s %s", event_type, subject, extra={"event_type": event_type, **_ids(data)})
    if not settings.events_topic_endpoint:
        return False
    try:
        from azure.eventgrid import EventGridEvent, EventGridPublisherClient

        client = EventGridPublisherClient(settings.events_topic_endpoint, _topic_credential(settings))
        client.send(EventGridEvent(subject=subject, event_type=event_type, data=data, data_version="1"))
        return True
    except Exception:  # notifications must never fail the step that raised them
        log.exception("could not publish %s for %s", event_type, subject)
        return False


def _topic_credential(settings: Settings) -> Any:
    """The topic's access key when EVENTS_TOPIC_KEY is set, else the app's managed identity (Entra ID)."""
    if settings.events_topic_key:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(settings.events_topic_key)
    from shared.storage import credential

    return credential(settings.azure_client_id)


def _ids(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in ("run_id", "model", "job_name") if key in data}
