"""Fine-tuning parameters: the notebook's defaults, merged in a fixed order, checked against the component.

Why here and not in a backend: both backends run "the same job". The Azure ML backend passes these names
to the ``chat_completion_pipeline`` component; the local backend honours the same names in its trainer. A
bad name or value must fail the run *before* anything is submitted, with a message naming the parameter and
where it came from, instead of failing an hour later inside a pipeline step.

Precedence (later wins), exactly the notebook's order extended with two operator layers:
1. ``NOTEBOOK_DEFAULTS`` (the notebook's ``training_parameters`` + ``optimization_parameters``);
2. the base model's ``model_specific_defaults`` tag (a Python-literal dict string, as the notebook reads it);
3. the operator's ``FINETUNE_PARAMETERS`` setting (JSON object);
4. the per-model ``incoming/{model}/finetune.json`` (JSON object).
A ``null`` value in a later layer removes the name, so the component's own default applies.

The component's inputs (``shared.component_inputs``) come from ``shared/backends/chat_completion_inputs.json``, a
copy generated from ``../shared/contracts/chat_completion_pipeline.spec.yaml`` (which is not deployed):
``python -m shared.finetune_params [SPEC] [OUT]`` regenerates it; a test checks the copy matches the spec.
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared.component_inputs import INPUTS_PATH, component_inputs, write_inputs
from shared.errors import BackendError, BadInput


class ParameterError(BadInput, BackendError):
    """A fine-tuning parameter (or the base model's defaults tag) is wrong; the message names it and where it came
    from. A ``BackendError`` too, so run submission fails the run with the reason as for any platform refusal."""

    code = "invalid_parameter"


__all__ = [
    "NOTEBOOK_DEFAULTS",
    "RESERVED_INPUTS",
    "ParameterError",
    "merge_parameters",
    "model_defaults",
    "parse_model_specific_defaults",
    "parse_parameters_json",
    "pipeline_display_name",
    "resolve_parameters",
    "validate_parameters",
]

log = logging.getLogger(__name__)


# The notebook's cell "Define finetune parameters". deepspeed_stage is 2 (an int) in the notebook, but the
# component declares it a string enum ("2", "3"), so the spec's type is used here.
NOTEBOOK_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "num_train_epochs": 3,
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "apply_lora": "true",
        "apply_deepspeed": "true",
        "deepspeed_stage": "2",
    }
)

_COMPUTE = "COMPUTE_CLUSTER (and INSTANCE_TYPE_FINETUNE for serverless)"
_DATA = "the prepared dataset (train/test split of the upload)"
# Inputs the backend sets itself from settings or data; an operator value would silently fight them.
RESERVED_INPUTS: Mapping[str, str] = MappingProxyType(
    {
        "mlflow_model_path": "BASE_MODEL / BASE_MODEL_VERSION",
        "pytorch_model_path": "BASE_MODEL / BASE_MODEL_VERSION",
        "huggingface_id": "BASE_MODEL / BASE_MODEL_VERSION",
        "train_file_path": _DATA,
        "test_file_path": _DATA,
        "validation_file_path": _DATA,
        "train_mltable_path": _DATA,
        "validation_mltable_path": _DATA,
        "test_mltable_path": _DATA,
        "compute_model_import": _COMPUTE,
        "compute_preprocess": _COMPUTE,
        "compute_finetune": _COMPUTE,
        "compute_model_evaluation": _COMPUTE,
        "instance_type_model_import": _COMPUTE,
        "instance_type_preprocess": _COMPUTE,
        "instance_type_finetune": _COMPUTE,
        "instance_type_model_evaluation": _COMPUTE,
        "number_of_gpu_to_use_finetuning": "the GPUs per node of the compute's VM size",
        "task_name": "the pipeline (always ChatCompletion)",
    }
)

_PATH_TYPES = frozenset({"uri_file", "uri_folder", "mlflow_model", "custom_model", "mltable"})


# --------------------------------------------------------------------------------------------- parsing layers
def parse_model_specific_defaults(tag: str | Mapping[str, Any] | None, *, model: str = "the base model") -> dict:
    """The ``model_specific_defaults`` tag as a dict; the notebook reads it with ``ast.literal_eval``.

    JSON (``true``/``null``) is accepted as well, since tags written by other tools use it.
    """
    if tag is None or tag == "":
        return {}
    if isinstance(tag, Mapping):
        return dict(tag)
    text = str(tag).strip()
    # Registry tags written from YAML sometimes read "OrderedDict([...])" / "ordereddict({...})".
    wrapped = re.fullmatch(r"(?:collections\.)?ordereddict\((.*)\)", text, flags=re.IGNORECASE | re.DOTALL)
    if wrapped:
        text = wrapped.group(1)
    value: Any = None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
    if isinstance(value, list) and all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in value):
        value = dict(value)
    if not isinstance(value, dict):
        raise ParameterError(
            f"The 'model_specific_defaults' tag of {model} is not a dictionary ({str(tag)[:200]!r}); "
            "choose another BASE_MODEL / BASE_MODEL_VERSION or report it to the model's publisher",
            setting="BASE_MODEL",
            code="invalid_model_defaults",
        )
    return value


def parse_parameters_json(text: str | bytes, *, source: str) -> dict[str, Any]:
    """A JSON object of parameters (``finetune.json``); errors name ``source`` and the line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            code="invalid_parameter",
        ) from None
    except UnicodeDecodeError as exc:
        raise ParameterError(f"{source} is not UTF-8 text: {exc}", code="invalid_parameter") from None
    if not isinstance(value, dict):
        raise ParameterError(
            f"{source} must hold a JSON object of parameter names and values, got {type(value).__name__}",
            code="invalid_parameter",
        )
    return value


# --------------------------------------------------------------------------------------------- validation
def _as_enum_string(value: Any, enum: list[str]) -> str | None:
    if isinstance(value, bool):
        candidate = "true" if value else "false"
    elif isinstance(value, (int, float)):
        candidate = str(int(value)) if float(value).is_integer() else str(value)
    elif isinstance(value, str):
        candidate = value
    else:
        return None
    if candidate in enum:
        return candidate
    lowered = candidate.lower()
    return lowered if lowered in enum else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _check_one(name: str, value: Any, spec: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Normalise one value to the spec's type; return (value, problem)."""
    kind = spec.get("type")
    enum = spec.get("enum")
    if kind == "string":
        if enum:
            normalised = _as_enum_string(value, enum)
            if normalised is None:
                return value, f"{name} must be one of {', '.join(repr(e) for e in enum)}, got {value!r}"
            return normalised, None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value), None
        return value, f"{name} must be a string, got {value!r}"
    if kind in ("integer", "number"):
        number = _as_int(value) if kind == "integer" else _as_float(value)
        if number is None:
            article = "an integer" if kind == "integer" else "a number"
            return value, f"{name} must be {article}, got {value!r}"
        if "min" in spec and number < spec["min"]:
            return value, f"{name} must be at least {spec['min']}, got {number}"
        if "max" in spec and number > spec["max"]:
            return value, f"{name} must be at most {spec['max']}, got {number}"
        return number, None
    if kind == "boolean":
        normalised = _as_enum_string(value, ["true", "false"])
        if normalised is None:
            return value, f"{name} must be true or false, got {value!r}"
        return normalised == "true", None
    if kind in _PATH_TYPES:
        if isinstance(value, str) and value.strip():
            return value.strip(), None
        return value, f"{name} is a {kind} input: give its path as a string (azureml://... or azureml:name:version)"
    return value, f"{name} has an input type this app does not handle ({kind})"


def validate_parameters(
    params: Mapping[str, Any], *, source: str = "parameters", allow_reserved: bool = False
) -> dict[str, Any]:
    """Check every name and value against the component's inputs; return the values in the spec's types.

    Raises ``ParameterError`` listing every problem, each naming the parameter and ``source``.
    """
    inputs = component_inputs()
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = inputs.get(name)
        if spec is None:
            close = difflib.get_close_matches(str(name), list(inputs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{name!r} is not an input of chat_completion_pipeline{hint}")
            continue
        if not allow_reserved and name in RESERVED_INPUTS:
            problems.append(f"{name} is set by the app from {RESERVED_INPUTS[name]}; remove it")
            continue
        normalised, problem = _check_one(name, value, spec)
        if problem:
            problems.append(problem)
        else:
            out[name] = normalised
    if problems:
        setting = "FINETUNE_PARAMETERS" if source == "FINETUNE_PARAMETERS" else None
        raise ParameterError(
            f"Invalid fine-tuning parameter in {source}: " + "; ".join(problems),
            setting=setting,
            code="invalid_parameter",
        )
    return out


def merge_parameters(layers: Iterable[tuple[str, Mapping[str, Any] | None]]) -> dict[str, Any]:
    """Merge ``(source, values)`` layers in order, validating each under its own name.

    A ``None`` value removes the name (the component's default applies). The model's tag is validated too:
    the notebook would pass it straight to the pipeline, so a name the pinned component lacks fails here.
    """
    merged: dict[str, Any] = {}
    for source, values in layers:
        if not values:
            continue
        removed = [name for name, value in values.items() if value is None]
        present = {name: value for name, value in values.items() if value is not None}
        merged.update(validate_parameters(present, source=source))
        for name in removed:
            merged.pop(name, None)
    return merged


def model_defaults(tag: str | Mapping[str, Any] | None, *, model: str = "the base model") -> dict[str, Any]:
    """The model's ``model_specific_defaults`` restricted to the component's tunable inputs.

    Publishers put hints there that are not inputs (Phi-3's tag has ``learning_rate_min``/``learning_rate_max``)
    and an operator cannot edit a registry tag, so unknown and app-set names are dropped (logged), not fatal.
    Known names with bad values still fail: the pipeline would reject them an hour later.
    """
    values = parse_model_specific_defaults(tag, model=model)
    inputs = component_inputs()
    dropped = sorted(name for name in values if name not in inputs or name in RESERVED_INPUTS)
    if dropped:
        log.info("ignoring model_specific_defaults of %s that are not tunable inputs: %s", model, ", ".join(dropped))
    return {name: value for name, value in values.items() if name not in dropped}


def resolve_parameters(
    model_specific_defaults: str | Mapping[str, Any] | None = None,
    operator: Mapping[str, Any] | None = None,
    per_model: Mapping[str, Any] | None = None,
    *,
    model: str = "the base model",
    per_model_source: str = "finetune.json",
) -> dict[str, Any]:
    """Notebook defaults → model tag → FINETUNE_PARAMETERS → per-model finetune.json, validated."""
    return merge_parameters(
        [
            ("the notebook defaults", dict(NOTEBOOK_DEFAULTS)),
            (f"the 'model_specific_defaults' tag of {model}", model_defaults(model_specific_defaults, model=model)),
            ("FINETUNE_PARAMETERS", operator),
            (per_model_source, per_model),
        ]
    )


# --------------------------------------------------------------------------------------------- display name
def pipeline_display_name(model_name: str, params: Mapping[str, Any], gpus_per_node: int) -> str:
    """The notebook's ``get_pipeline_display_name()``: model-ultrachat-bs…-scheduler-ds…-lora…-save_limit…-seqlen…

    The notebook names the dataset ("ultrachat"); the word is kept so runs look the same in the studio.
    """
    batch_size = (
        int(params.get("per_device_train_batch_size", 1))
        * int(params.get("gradient_accumulation_steps", 1))
        * int(gpus_per_node)
        * int(params.get("num_nodes_finetune", 1))
    )
    scheduler = params.get("lr_scheduler_type", "linear")
    ds_string = (
        f"ds{params.get('deepspeed_stage', '2')}" if params.get("apply_deepspeed", "false") == "true" else "nods"
    )
    lora_string = "lora" if params.get("apply_lora", "false") == "true" else "nolora"
    save_limit = params.get("save_total_limit", -1)
    seq_len = params.get("max_seq_length", -1)
    return (
        f"{model_name}-ultrachat-bs{batch_size}-{scheduler}-{ds_string}-{lora_string}"
        f"-save_limit{save_limit}-seqlen{seq_len}"
    )


def _main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    default_spec = Path(__file__).resolve().parents[2] / "shared" / "contracts" / "chat_completion_pipeline.spec.yaml"
    spec = Path(args[0]) if args else default_spec
    out = Path(args[1]) if len(args) > 1 else INPUTS_PATH
    data = write_inputs(spec, out)
    print(f"wrote {out}: {len(data['inputs'])} inputs of {data['component']} {data['version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
