"""The smoke test a new deployment must pass before it gets any traffic.

Why a conversation from the run's own test split: it is real data in the shape the model was trained on, so
a model that loads but cannot answer (wrong chat template, broken weights, a scoring script that crashes)
fails here, while the old deployment still takes all the traffic. The request is pinned to the new
deployment with the ``azureml-model-deployment`` header (``backend.scoring_target(endpoint, deployment)``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.settings import Settings

log = logging.getLogger(__name__)

FIRST_ROW_BYTES = 1024 * 1024
FALLBACK_CONVERSATION: list[dict[str, str]] = [{"role": "user", "content": "Hello! Please answer in one sentence."}]
SMOKE_PARAMETERS = {"max_new_tokens": 48, "do_sample": False}


def conversation_prefix(messages: Any) -> list[dict[str, str]] | None:
    """The messages up to and including the last user message (what a client would send), or None."""
    if not isinstance(messages, list):
        return None
    cleaned = [
        {"role": str(m["role"]).lower(), "content": str(m["content"])}
        for m in messages
        if isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str)
    ]
    last_user = max((i for i, m in enumerate(cleaned) if m["role"] == "user"), default=-1)
    return cleaned[: last_user + 1] if last_user >= 0 else None


def first_conversation(settings: Settings, blob_path: str) -> list[dict[str, str]] | None:
    """The first usable conversation of a prepared split (reads at most 1 MiB), or None when there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.storage import blob_service

    client = blob_service(settings).get_blob_client(settings.training_container, blob_path)
    try:
        head = client.download_blob(offset=0, length=FIRST_ROW_BYTES).readall()
    except ResourceNotFoundError:
        return None
    for line in head.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a row cut at the 1 MiB boundary; try the next
        found = conversation_prefix(row.get("messages") if isinstance(row, dict) else None)
        if found:
            return found
    return None


def output_text(answer: Any) -> str:
    """The generated text of a scoring answer, parsed as defensively as Azure's own tooling does."""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict):
        for key in ("output", "0", 0):
            if key in answer:
                return output_text(answer[key])
        return ""
    if isinstance(answer, list) and answer:
        return output_text(answer[0])
    return ""


def smoke_payload(conversation: list[dict[str, str]]) -> dict[str, Any]:
    return {"input_data": {"input_string": conversation, "parameters": dict(SMOKE_PARAMETERS)}, "params": {}}


__all__ = ["conversation_prefix", "first_conversation", "output_text", "smoke_payload"]
