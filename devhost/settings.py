"""App settings the way Core Tools hands them to a Functions app: ``local.settings.json`` into the environment
(read by ``shared.localsettings``, which the CLI shares), and ``%SETTING%`` references resolved in bindings."""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

from shared.localsettings import SETTINGS_FILES, ConfigError, find_settings_file, load_local_settings

_SETTING_REF = re.compile(r"%([^%\s]+)%")


def resolve(text: str, environ: MutableMapping[str, str] | None = None, *, what: str = "value") -> str:
    """Replace each ``%SETTING%`` in ``text`` by that app setting, as the host does for binding expressions."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{what} {text!r} names app setting {name}, which is not set")
        return env[name]

    return _SETTING_REF.sub(substitute, text)


__all__ = ["SETTINGS_FILES", "ConfigError", "find_settings_file", "load_local_settings", "resolve"]
