"""Job events in Azure ML's Event Grid shape, published to the Functions host's Event Grid webhook.

Why the same shape: the function ``on_ml_job_event`` must not know which platform ran the job. Azure ML
sends ``Microsoft.MachineLearningServices.RunCompleted`` for a completed pipeline job and
``RunStatusChanged`` (``runStatus`` Failed/Canceled) otherwise; subject ``experiments/{id}/runs/{job}``;
topic = the workspace's ARM id (here ``LOCAL_WORKSPACE_ID``). Delivery is best effort with a few retries;
a host that is down loses the event, and the reconciler's backstop poll picks the job up later.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from shared.backends.base import DATASET_TAG, MODEL_TAG, RUN_TAG

log = logging.getLogger("autotune.local.events")

RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
WEBHOOK_PATH = "/runtime/webhooks/eventgrid?functionName=on_ml_job_event"
AZURE_STATUS = {"completed": "Completed", "failed": "Failed", "canceled": "Canceled"}


def experiment_id(workspace_id: str, experiment: str) -> str:
    """A stable GUID per workspace + experiment name (Azure ML's experiment ids are GUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{workspace_id}/experiments/{experiment}"))


def run_tags(job: dict[str, Any]) -> dict[str, str]:
    return {
        "azureml.pipelineComponent": "pipelinerun",
        RUN_TAG: job.get("run_id", ""),
        MODEL_TAG: job.get("model", ""),
        DATASET_TAG: job.get("dataset_id", ""),
    }


def build_event(job: dict[str, Any], state: str, workspace_id: str) -> dict[str, Any]:
    """The EventGridEvent fields for a job's ``state`` (running, or the final completed, failed, canceled)."""
    exp_id = experiment_id(workspace_id, job.get("experiment", ""))
    data: dict[str, Any] = {
        "experimentId": exp_id,
        "experimentName": job.get("experiment", ""),
        "runId": job["name"],
        "runType": "azureml.PipelineRun",
        "runTags": run_tags(job),
        "runProperties": {
            "azureml.runsource": "azureml.PipelineRun",
            "runSource": "MFE",
            "runType": "HTTP",
            "azureml.parameters": json.dumps(job.get("parameters", {}), sort_keys=True),
        },
    }
    if state == "completed":
        event_type = RUN_COMPLETED
    else:
        event_type = RUN_STATUS_CHANGED
        data["runStatus"] = AZURE_STATUS.get(state, state.capitalize())
    return {
        "subject": f"experiments/{exp_id}/runs/{job['name']}",
        "event_type": event_type,
        "data": data,
        "data_version": "2",
        "topic": workspace_id,
    }


def publish(host_url: str, event: dict[str, Any], attempts: int = 4, delay: float = 0.5) -> bool:
    """POST one event to the host's Event Grid webhook with azure-eventgrid; True when the host accepted it."""
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import AzureError
    from azure.eventgrid import EventGridEvent, EventGridPublisherClient

    endpoint = host_url.rstrip("/") + WEBHOOK_PATH
    client = EventGridPublisherClient(endpoint, AzureKeyCredential("local"), retry_total=0)
    try:
        for attempt in range(1, attempts + 1):
            try:
                client.send(
                    [EventGridEvent(**event)],
                    headers={"aeg-event-type": "Notification"},
                    connection_timeout=5,
                    read_timeout=30,  # Event Grid gives a webhook 30 s to answer
                )
                log.info("published %s for job %s to %s", event["event_type"], event["data"]["runId"], endpoint)
                return True
            except AzureError as exc:
                log.warning("event delivery attempt %d/%d to %s failed: %s", attempt, attempts, endpoint, exc)
                if attempt < attempts:
                    time.sleep(delay * 2 ** (attempt - 1))
    finally:
        client.close()
    log.warning(
        "gave up publishing %s for job %s: the host at %s is unreachable; the reconciler's poll will find the job",
        event["event_type"],
        event["data"]["runId"],
        host_url,
    )
    return False
