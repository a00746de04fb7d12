"""The ``chat_completion_pipeline`` component's inputs, from a committed copy of its spec.

Why a copy: the spec (``../shared/contracts/chat_completion_pipeline.spec.yaml``) is not deployed, but every run's
parameters are checked against its inputs (``shared.finetune_params``) before anything is submitted. The copy,
``shared/backends/chat_completion_inputs.json``, keeps only what validation needs; ``python -m
shared.finetune_params [SPEC] [OUT]`` regenerates it and a test checks it matches the spec.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

INPUTS_PATH = Path(__file__).resolve().parent / "backends" / "chat_completion_inputs.json"
_SPEC_KEYS = ("type", "optional", "default", "enum", "min", "max")


def generate_inputs(spec_path: str | Path) -> dict[str, Any]:
    """Read the component spec YAML and keep what validation needs (names, types, enums, bounds, defaults).

    Numbers are normalised (``default: 1e-8`` is a string to YAML 1.1) so the copy compares stably.
    """
    import yaml  # lazy: only the generator and its test need it

    spec = yaml.safe_load(Path(spec_path).read_text(encoding="utf-8"))
    inputs: dict[str, dict[str, Any]] = {}
    for name, raw in (spec.get("inputs") or {}).items():
        entry = {key: raw[key] for key in _SPEC_KEYS if key in raw}
        entry["optional"] = bool(raw.get("optional", False))
        if "enum" in entry:
            entry["enum"] = [str(value) for value in entry["enum"]]
        kind = entry.get("type")
        for key in ("default", "min", "max"):
            if key not in entry:
                continue
            if kind in ("integer", "number"):
                entry[key] = int(entry[key]) if kind == "integer" else float(entry[key])
            elif key == "default" and kind == "string":
                entry[key] = str(entry[key])
        inputs[name] = entry
    outputs = {name: (raw or {}).get("type", "") for name, raw in (spec.get("outputs") or {}).items()}
    return {
        "component": spec.get("name", ""),
        "version": str(spec.get("version", "")),
        "source": "../shared/contracts/chat_completion_pipeline.spec.yaml; python -m shared.finetune_params",
        "inputs": inputs,
        "outputs": outputs,
    }


def write_inputs(spec_path: str | Path, out_path: str | Path = INPUTS_PATH) -> dict[str, Any]:
    data = generate_inputs(spec_path)
    Path(out_path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return data


@lru_cache(maxsize=1)
def _inputs_document() -> dict[str, Any]:
    return json.loads(INPUTS_PATH.read_text(encoding="utf-8"))


def component_inputs() -> dict[str, dict[str, Any]]:
    """The component's inputs by name (from the committed copy)."""
    return _inputs_document()["inputs"]


def shipped_component_version() -> str:
    """The chat_completion_pipeline version whose inputs the committed copy holds (PIPELINE_COMPONENT_VERSION's
    default)."""
    return str(_inputs_document()["version"])


__all__ = ["INPUTS_PATH", "component_inputs", "generate_inputs", "shipped_component_version", "write_inputs"]
