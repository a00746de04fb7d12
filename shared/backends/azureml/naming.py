"""Deployment names as Azure ML accepts them.

Why: Azure ML wants deployment names of 3-32 characters (``^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$``), while the
app names deployments ``v{version}`` (``shared.names.deployment_name``), so ``v1``..``v99`` would be rejected.
A name shorter than 3 characters gets a hyphen after its first character on the way in (``v1`` → ``v-1``) and
loses it on the way out, so the rest of the app keeps seeing its own names. Longer names pass unchanged.
"""

from __future__ import annotations

import re

_PADDED = re.compile(r"^([a-zA-Z])-([a-zA-Z0-9])$")


def to_azure(name: str) -> str:
    return f"{name[0]}-{name[1:]}" if 1 < len(name) < 3 else name


def from_azure(name: str) -> str:
    match = _PADDED.match(name)
    return f"{match.group(1)}{match.group(2)}" if match else name
