"""Local fine-tuning parameters: the component's names, the tiny model's defaults, the trainer's arguments."""

from __future__ import annotations

import pytest

from localml import params
from shared.backends.base import BackendError
from shared.component_inputs import component_inputs
from shared.finetune_params import resolve_parameters


def test_every_component_input_is_either_honoured_ignored_or_set_by_the_backend() -> None:
    from shared.finetune_params import RESERVED_INPUTS

    names = set(component_inputs())
    covered = set(params.HONOURED) | set(params.IGNORED) | set(RESERVED_INPUTS)
    assert names <= covered, sorted(names - covered)
    assert set(params.HONOURED) <= names and set(params.IGNORED) <= names


def test_honoured_defaults_are_the_components_own() -> None:
    inputs = component_inputs()
    for name, value in params.HONOURED.items():
        assert inputs[name].get("default") == value, name


def test_tiny_model_defaults_layer_over_the_notebook_and_under_the_operator() -> None:
    merged = resolve_parameters(repr(params.TINY_MODEL_DEFAULTS), operator={"num_train_epochs": 2})
    assert merged["learning_rate"] == params.TINY_MODEL_DEFAULTS["learning_rate"]  # not the notebook's 5e-6
    assert merged["num_train_epochs"] == 2 and merged["apply_lora"] == "true"
    assert merged["apply_deepspeed"] == "true"  # the notebook's; accepted and ignored locally


def test_effective_fills_defaults_and_rejects_bad_values_by_name() -> None:
    p = params.effective({"learning_rate": "0.01", "apply_deepspeed": "true"})
    assert p["learning_rate"] == 0.01 and p["lora_r"] == 8 and p["lr_scheduler_type"] == "linear"
    with pytest.raises(BackendError, match="lr_scheduler_type"):
        params.effective({"lr_scheduler_type": "sometimes"})
    with pytest.raises(BackendError, match="learning_rate"):
        params.effective({"learning_rate": "fast"})
    with pytest.raises(BackendError, match="lora_rank"):
        params.effective({"lora_rank": 8})


def test_training_arguments_map_the_names() -> None:
    p = params.effective({"max_steps": 7, "gradient_accumulation_steps": 2, "precision": "16", "seed": 3})
    cpu = params.training_arguments(p, output_dir="/tmp/x", cuda=False)
    assert cpu["max_steps"] == 7 and cpu["gradient_accumulation_steps"] == 2 and cpu["seed"] == 3
    assert cpu["fp16"] is False and cpu["use_cpu"] is True  # half precision only on a GPU
    assert params.training_arguments(p, output_dir="/tmp/x", cuda=True)["fp16"] is True
    on_bf16_gpu = params.training_arguments(p, output_dir="/tmp/x", cuda=True, bf16=True)
    assert on_bf16_gpu["bf16"] is True and on_bf16_gpu["fp16"] is False


@pytest.mark.parametrize(
    ("requested", "model_max", "setting_max", "expected"),
    [
        (-1, 1024, 2048, 1024),
        (256, 1024, 2048, 256),
        (4096, 1024, 2048, 1024),
        (-1, 8192, 2048, 2048),
        (-1, 0, 512, 512),
    ],
)
def test_max_length(requested, model_max, setting_max, expected) -> None:
    assert params.max_length({"max_seq_length": requested}, model_max, setting_max) == expected
