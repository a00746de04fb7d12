"""Fine-tuning parameters: notebook defaults, precedence, validation against the component's inputs."""

from __future__ import annotations

import json

import pytest

from shared.backends.base import BackendError
from shared.component_inputs import INPUTS_PATH, component_inputs, generate_inputs
from shared.finetune_params import (
    NOTEBOOK_DEFAULTS,
    merge_parameters,
    model_defaults,
    parse_model_specific_defaults,
    parse_parameters_json,
    pipeline_display_name,
    resolve_parameters,
    validate_parameters,
)
from tests.conftest import SHARED_DIR

SPEC = SHARED_DIR / "contracts" / "chat_completion_pipeline.spec.yaml"


def test_committed_inputs_copy_matches_the_component_spec():
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is absent (../shared is not checked out beside the project); cannot compare the copy")
    committed = json.loads(INPUTS_PATH.read_text(encoding="utf-8"))
    generated = json.loads(json.dumps(generate_inputs(SPEC)))
    assert committed == generated, "regenerate with: python -m shared.finetune_params"
    assert committed["outputs"]["mlflow_model_folder"] == "mlflow_model"


def test_every_input_has_a_type_the_validator_handles():
    handled = {"string", "integer", "number", "boolean", "uri_file", "uri_folder", "mlflow_model", "custom_model"}
    handled.add("mltable")
    assert {spec["type"] for spec in component_inputs().values()} <= handled


def test_notebook_defaults_are_valid_and_in_the_spec_types():
    assert dict(NOTEBOOK_DEFAULTS) == {
        "num_train_epochs": 3,
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "apply_lora": "true",
        "apply_deepspeed": "true",
        "deepspeed_stage": "2",
    }
    assert validate_parameters(NOTEBOOK_DEFAULTS) == dict(NOTEBOOK_DEFAULTS)
    assert resolve_parameters() == dict(NOTEBOOK_DEFAULTS)


def test_precedence_defaults_then_model_tag_then_operator_then_per_model():
    params = resolve_parameters(
        "{'learning_rate': 2e-5, 'deepspeed_stage': 3, 'num_train_epochs': 2, 'precision': '16'}",
        {"num_train_epochs": 4, "lora_r": 16},
        {"lora_r": 32, "apply_deepspeed": None},
        model="Phi-3-mini-4k-instruct",
    )
    assert params["learning_rate"] == 2e-5  # model tag over notebook default
    assert params["deepspeed_stage"] == "3"  # int in the tag, string in the spec
    assert params["num_train_epochs"] == 4  # operator over model tag
    assert params["lora_r"] == 32  # per-model file over operator
    assert "apply_deepspeed" not in params  # null removes: the component's own default applies
    assert params["lr_scheduler_type"] == "cosine"


@pytest.mark.parametrize(
    "tag",
    [
        "{'apply_lora': 'true', 'precision': 16}",
        '{"apply_lora": "true", "precision": 16}',
        "OrderedDict([('apply_lora', 'true'), ('precision', 16)])",
        "ordereddict({'apply_lora': 'true', 'precision': 16})",
        {"apply_lora": "true", "precision": 16},
    ],
)
def test_model_specific_defaults_tag_forms(tag):
    assert parse_model_specific_defaults(tag) == {"apply_lora": "true", "precision": 16}


def test_malformed_model_tag_names_the_setting_to_change():
    with pytest.raises(BackendError) as err:
        parse_model_specific_defaults("not a dict(", model="Phi-3-mini-4k-instruct")
    assert err.value.setting == "BASE_MODEL"
    assert "Phi-3-mini-4k-instruct" in str(err.value)


def test_unknown_name_is_named_with_a_suggestion_and_the_source():
    with pytest.raises(BackendError) as err:
        resolve_parameters(None, {"lerning_rate": 1e-5})
    message = str(err.value)
    assert "'lerning_rate'" in message and "did you mean 'learning_rate'" in message
    assert "FINETUNE_PARAMETERS" in message
    assert err.value.setting == "FINETUNE_PARAMETERS"
    assert err.value.code == "invalid_parameter"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"apply_lora": "yes"}, "apply_lora must be one of 'true', 'false'"),
        ({"lr_scheduler_type": "cosin"}, "lr_scheduler_type must be one of"),
        ({"num_train_epochs": 0}, "num_train_epochs must be at least 1"),
        ({"num_train_epochs": 1.5}, "num_train_epochs must be an integer"),
        ({"num_train_epochs": True}, "num_train_epochs must be an integer"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a number"),
        ({"deepspeed_stage": 1}, "deepspeed_stage must be one of '2', '3'"),
        ({"deepspeed": 3}, "deepspeed is a uri_file input"),
    ],
)
def test_bad_values_are_named(params, expected):
    with pytest.raises(BackendError) as err:
        validate_parameters(params, source="incoming/bot/finetune.json")
    assert expected in str(err.value)
    assert "incoming/bot/finetune.json" in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(BackendError) as err:
        validate_parameters({"apply_lora": "yes", "seed": "x"})
    assert "apply_lora" in str(err.value) and "seed" in str(err.value)


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("compute_finetune", "COMPUTE_CLUSTER"),
        ("mlflow_model_path", "BASE_MODEL"),
        ("train_file_path", "prepared dataset"),
        ("number_of_gpu_to_use_finetuning", "GPUs per node"),
    ],
)
def test_inputs_the_app_sets_cannot_be_overridden(name, setting):
    with pytest.raises(BackendError) as err:
        validate_parameters({name: "x"}, source="FINETUNE_PARAMETERS")
    assert name in str(err.value) and setting in str(err.value)


def test_values_are_normalised_to_the_spec_types():
    assert validate_parameters(
        {
            "apply_lora": True,
            "merge_lora_weights": "False",
            "precision": 16,
            "max_steps": "20",
            "lora_alpha": 64.0,
            "lora_dropout": 0,
            "learning_rate": "1e-4",
            "shm_size_finetune": "16g",
        }
    ) == {
        "apply_lora": "true",
        "merge_lora_weights": "false",
        "precision": "16",
        "max_steps": 20,
        "lora_alpha": 64,
        "lora_dropout": 0.0,
        "learning_rate": 1e-4,
        "shm_size_finetune": "16g",
    }


def test_merge_keeps_earlier_layers_when_later_ones_are_empty():
    assert merge_parameters([("a", {"seed": 1}), ("b", None), ("c", {})]) == {"seed": 1}


def test_parse_parameters_json_names_the_file_and_line():
    assert parse_parameters_json(b'{"seed": 7}', source="incoming/bot/finetune.json") == {"seed": 7}
    with pytest.raises(BackendError) as err:
        parse_parameters_json('{\n "seed": 7,\n}', source="incoming/bot/finetune.json")
    assert "incoming/bot/finetune.json" in str(err.value) and "line 3" in str(err.value)
    with pytest.raises(BackendError, match="JSON object"):
        parse_parameters_json("[1]", source="incoming/bot/finetune.json")


def test_pipeline_display_name_follows_the_notebook():
    params = resolve_parameters()
    assert (
        pipeline_display_name("Phi-3-mini-4k-instruct", params, 2)
        == "Phi-3-mini-4k-instruct-ultrachat-bs2-cosine-ds2-lora-save_limit-1-seqlen-1"
    )
    plain = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "max_seq_length": 512}
    assert pipeline_display_name("m", plain, 1) == "m-ultrachat-bs8-linear-nods-nolora-save_limit-1-seqlen512"


def test_publisher_hints_in_the_model_tag_that_are_not_inputs_are_ignored():
    # Phi-3-mini's real tag carries learning_rate_min/max (tuning ranges, not component inputs).
    tag = "{'learning_rate': '5e-6', 'learning_rate_min': '5e-7', 'learning_rate_max': '5e-5', 'save_total_limit': 1}"
    assert model_defaults(tag) == {"learning_rate": "5e-6", "save_total_limit": 1}
    params = resolve_parameters(tag)
    assert params["learning_rate"] == 5e-6 and params["save_total_limit"] == 1
    assert "learning_rate_min" not in params


def test_bad_value_of_a_known_input_in_the_model_tag_still_fails():
    with pytest.raises(BackendError, match="model_specific_defaults"):
        resolve_parameters("{'apply_lora': 'maybe'}", model="m")
