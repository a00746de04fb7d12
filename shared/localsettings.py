"""``local.settings.json``: the Azure Functions convention for a checkout's app settings, read the way Core Tools
reads it.

Why not just export them: ``func start`` reads ``Values`` from ``local.settings.json`` but never overrides a
variable that is already set, so CI, tests and a developer's shell can override any one setting. The same
reading serves the devhost (``devhost.settings``) and the CLI (``shared.cli.client``), falling back to
``local.settings.sample.json`` so a fresh clone runs without copying files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from shared.errors import PlatformError

log = logging.getLogger("devhost")  # the devhost's log, where these lines always appeared

SETTINGS_FILES = ("local.settings.json", "local.settings.sample.json")


class ConfigError(PlatformError, ValueError):
    """A setting the host itself needs (a schedule, a blob path, a connection) is missing or malformed, or the
    settings file is broken; the message names the setting or the file and line."""

    code = "invalid_local_settings"


def find_settings_file(script_root: Path) -> Path | None:
    for name in SETTINGS_FILES:
        path = script_root / name
        if path.is_file():
            return path
    return None


def load_local_settings(script_root: Path, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put ``Values`` of the settings file into ``environ`` where not set already; return what was applied.

    Values that are not strings are converted the way Core Tools does (JSON numbers and booleans to text).
    """
    env = os.environ if environ is None else environ
    path = find_settings_file(script_root)
    if path is None:
        log.warning("no %s in %s: using the environment only", " or ".join(SETTINGS_FILES), script_root)
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: 'Values' must be a JSON object of setting names to values")
    applied: dict[str, str] = {}
    skipped = []
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in env:
            skipped.append(key)
            continue
        env[key] = text
        applied[key] = text
    log.info("settings from %s: %d applied, %d already set in the environment", path.name, len(applied), len(skipped))
    return applied


__all__ = ["SETTINGS_FILES", "ConfigError", "find_settings_file", "load_local_settings"]
