"""Azure-like job names (``khaki_ear_4n6mbwp2qz``) and the validation of endpoint and deployment names."""

from __future__ import annotations

import re
import secrets
import string

from shared.backends.base import BackendError

_ADJECTIVES = [
    "amber",
    "azure",
    "bold",
    "brave",
    "bright",
    "calm",
    "clever",
    "coral",
    "crisp",
    "eager",
    "gentle",
    "golden",
    "happy",
    "jolly",
    "keen",
    "khaki",
    "lively",
    "loyal",
    "lucid",
    "mellow",
    "modest",
    "nimble",
    "plucky",
    "polite",
    "quick",
    "quiet",
    "rapid",
    "shy",
    "sleek",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "witty",
]
_NOUNS = [
    "apple",
    "badger",
    "beacon",
    "berry",
    "bison",
    "brook",
    "canyon",
    "cedar",
    "comet",
    "coral",
    "ear",
    "falcon",
    "fern",
    "garden",
    "harbor",
    "heron",
    "island",
    "kettle",
    "lantern",
    "maple",
    "meadow",
    "otter",
    "pebble",
    "pepper",
    "pine",
    "puffin",
    "river",
    "rocket",
    "sail",
    "spoon",
    "tiger",
    "tulip",
]
_ALPHABET = string.ascii_lowercase + string.digits

ENDPOINT_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
DEPLOYMENT_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,31}$")


def job_name() -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{suffix}"


def check_endpoint_name(name: str) -> str:
    """Azure ML's rule: 3-32 characters, a letter first, letters, digits and hyphens, no hyphen last."""
    if not ENDPOINT_RE.match(name or ""):
        raise BackendError(
            f"endpoint name {name!r} is invalid: 3-32 letters, digits and hyphens, starting with a letter",
            code="invalid_name",
        )
    return name


def check_deployment_name(name: str) -> str:
    if not DEPLOYMENT_RE.match(name or ""):
        raise BackendError(
            f"deployment name {name!r} is invalid: 1-32 letters, digits and hyphens, starting with a letter or digit",
            code="invalid_name",
        )
    return name


def check_job_name(name: str) -> str:
    if not re.match(r"^[a-z0-9_]{3,64}$", name or ""):
        raise BackendError(f"job {name!r} not found", code="not_found")
    return name
