"""Names users choose (models) and names we derive from them (endpoints, deployments)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from shared.errors import BadInput

if TYPE_CHECKING:
    from shared.settings import Settings

ENDPOINT_NAME_MAX = 32

MODEL_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


class InvalidNameError(BadInput, ValueError):
    """A model name the app cannot use (in a route, a blob path, a request)."""

    code = "invalid_model_name"
    field = "model"


def validate_model_name(model: str) -> str:
    """Model names are lowercase letters, digits and hyphens, 1-32 characters, no leading/trailing hyphen."""
    if not MODEL_NAME_RE.match(model or ""):
        raise InvalidNameError(
            f"model name {model!r} is invalid: use 1-32 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return model


def endpoint_name(model: str, suffix: str = "") -> str:
    """Stable Azure-valid endpoint name (3-32 chars, starts with a letter, letters/digits/hyphens).

    Short names read well (``at-support-bot``, ``at-support-bot-k3x9q2`` with a suffix); long ones keep a hash of
    the model so two models never collide. The suffix makes the name unique in the region: Azure ML endpoint
    names are global per region (the scoring URI is ``{name}.{region}.inference.ml.azure.com``).
    """
    tail = f"-{suffix}" if suffix else ""
    base = f"at-{model}"
    if len(base) + len(tail) <= ENDPOINT_NAME_MAX:
        return base + tail
    digest = hashlib.sha256(model.encode()).hexdigest()[:6]
    room = ENDPOINT_NAME_MAX - len(tail) - len(digest) - 1
    return f"{base[:room].rstrip('-')}-{digest}{tail}"


def endpoint_suffix(settings: Settings) -> str:
    """``ENDPOINT_NAME_SUFFIX``, else (Azure ML) 6 characters derived from the subscription and workspace, so
    two installs never race for one name; the local backend keeps plain ``at-{model}`` names."""
    if settings.endpoint_name_suffix:
        return settings.endpoint_name_suffix
    if settings.ml_backend != "azureml":
        return ""
    scope = "/".join(
        (settings.azure_subscription_id, settings.azure_resource_group, settings.azureml_workspace_name)
    ).lower()
    digest = int(hashlib.sha256(scope.encode()).hexdigest(), 16)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[(digest >> (6 * i)) % 36] for i in range(6))


def endpoint_name_for(settings: Settings, model: str) -> str:
    """The endpoint a model is served from in this install (reconciler, sweeper and gateway agree on it)."""
    return endpoint_name(model, endpoint_suffix(settings))


def deployment_name(version: str) -> str:
    return f"v{version}"
