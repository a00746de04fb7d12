"""Names users choose (models) and names we derive from them (endpoints, deployments, run ids)."""

from __future__ import annotations

import hashlib
import re

from shared.errors import BadInput

MODEL_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


class InvalidNameError(BadInput, ValueError):
    code = "invalid_name"


def validate_model_name(model: str) -> str:
    """Model names are lowercase letters, digits and hyphens, 1-32 characters, no leading/trailing hyphen."""
    if not MODEL_NAME_RE.match(model or ""):
        raise InvalidNameError(
            f"model name {model!r} is invalid: use 1-32 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return model


def endpoint_name(model: str) -> str:
    """Stable Azure-valid endpoint name (3-32 chars, starts with a letter, letters/digits/hyphens).

    Short names read well (``at-support-bot``); long ones keep a hash suffix so two models never collide.
    """
    base = f"at-{model}"
    if len(base) <= 32:
        return base
    digest = hashlib.sha256(model.encode()).hexdigest()[:6]
    return f"{base[:25].rstrip('-')}-{digest}"


def deployment_name(version: str) -> str:
    return f"v{version}"


def run_id_for(model: str, dataset_id: str) -> str:
    """One run per (model, dataset): the same bytes arriving twice never train twice."""
    return f"{model}-{dataset_id[:12]}"
