"""What an app setting is (``Setting``) and how its text is read (the ``as_*`` parsers)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def as_str(raw: str) -> str:
    return raw.strip()


def as_int(raw: str) -> int:
    return int(raw.strip())


def as_float(raw: str) -> float:
    return float(raw.strip())


def as_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def as_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def as_json_object(raw: str) -> dict[str, Any]:
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def as_endpoint_suffix(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[a-z0-9]{1,8}", value):
        raise ValueError(f"expected 1-8 lowercase letters and digits, got {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One app setting: its environment name, the ``Settings`` field it fills, and how to read it."""

    env: str
    attr: str
    default: str | None
    doc: str
    parse: Callable[[str], Any] = as_str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # Settings that only the Azure deployment needs are optional locally; ``required_when`` says when.
    required_when: str | None = None


__all__ = ["Setting", "as_bool", "as_csv", "as_endpoint_suffix", "as_float", "as_int", "as_json_object", "as_str"]
