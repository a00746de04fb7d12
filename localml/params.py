"""Fine-tuning parameters on the local backend: the component's names, local defaults, what each one does here.

Why the same names: a ``finetune.json`` or ``FINETUNE_PARAMETERS`` written for Azure ML must mean the same
thing locally, so the local trainer reads the ``chat_completion_pipeline`` inputs, validated by
``shared.finetune_params`` exactly as the Azure ML backend validates them.

Why different default *values*: the notebook's ``learning_rate=5e-6`` is tuned for a pretrained 3.8B model
over thousands of steps; the tiny local model (random weights, a few dozen steps on 2 CPU cores) learns
nothing at that rate. The tiny model therefore ships ``TINY_MODEL_DEFAULTS`` as its ``model_specific_defaults``
tag, exactly where Azure ML registry models carry theirs; operator values still win. A real checkpoint given
with ``LOCAL_BASE_MODEL`` gets the notebook's values.

Light module: no heavy imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The tiny model's model_specific_defaults: learns short support conversations in seconds on 2 CPU cores.
TINY_MODEL_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.003,
    "num_train_epochs": 8,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "lr_scheduler_type": "linear",
    "lora_r": 16,
    "lora_alpha": 32,
    "max_seq_length": 256,
}

# Inputs the local trainer honours, with the component's own defaults for those the layers leave unset.
HONOURED: dict[str, Any] = {
    "num_train_epochs": 1,
    "max_steps": -1,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "learning_rate": 2e-5,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "optim": "adamw_torch",
    "gradient_accumulation_steps": 1,
    "max_grad_norm": 1.0,
    "seed": 42,
    "enable_full_determinism": "false",
    "precision": "32",
    "apply_lora": "false",
    "merge_lora_weights": "true",
    "lora_r": 8,
    "lora_alpha": 128,
    "lora_dropout": 0.0,
    "max_seq_length": -1,
    "logging_steps": 10,
    "trust_remote_code": "false",
}

# Accepted (validated by name and value) and ignored: they choose Azure compute, distribution or features
# that have no meaning for one local process.
IGNORED: tuple[str, ...] = (
    "instance_type_model_import",
    "instance_type_preprocess",
    "instance_type_finetune",
    "instance_type_model_evaluation",
    "compute_model_import",
    "compute_preprocess",
    "compute_finetune",
    "compute_model_evaluation",
    "shm_size_finetune",
    "num_nodes_finetune",
    "number_of_gpu_to_use_finetuning",
    "apply_deepspeed",
    "deepspeed",
    "deepspeed_stage",
    "apply_ort",
    "auto_find_batch_size",
    "batch_size",
    "pad_to_max_length",
    "dataloader_num_workers",
    "ignore_mismatched_sizes",
    "eval_accumulation_steps",
    "evaluation_strategy",
    "evaluation_steps_interval",
    "eval_steps",
    "logging_strategy",
    "metric_for_best_model",
    "resume_from_checkpoint",
    "save_total_limit",
    "apply_early_stopping",
    "early_stopping_patience",
    "early_stopping_threshold",
    "evaluation_config",
    "evaluation_config_params",
    "finetune_config_path",
    "task_name",
)


def effective(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` (every name against the component) and fill the honoured ones' defaults.

    Raises ``BackendError`` naming a bad parameter: the job's validate stage turns it into a failed run.
    """
    from shared.finetune_params import validate_parameters

    present = {name: value for name, value in params.items() if value is not None}
    checked = validate_parameters(present, source="the job's parameters", allow_reserved=True)
    out = dict(HONOURED)
    out.update(checked)
    return out


def training_arguments(p: Mapping[str, Any], *, output_dir: str, cuda: bool, bf16: bool = False) -> dict[str, Any]:
    """``transformers.TrainingArguments`` keyword arguments for validated parameters ``p``.

    ``precision="16"`` means mixed precision on a GPU (bf16 where the GPU supports it, else fp16 autocast over
    fp32 weights); on a CPU it is ignored.
    """
    half = cuda and str(p["precision"]) == "16"
    return {
        "output_dir": output_dir,
        "num_train_epochs": float(p["num_train_epochs"]),
        "max_steps": int(p["max_steps"]),
        "per_device_train_batch_size": int(p["per_device_train_batch_size"]),
        "per_device_eval_batch_size": int(p["per_device_eval_batch_size"]),
        "learning_rate": float(p["learning_rate"]),
        "lr_scheduler_type": str(p["lr_scheduler_type"]),
        "warmup_steps": int(p["warmup_steps"]),
        "weight_decay": float(p["weight_decay"]),
        "adam_beta1": float(p["adam_beta1"]),
        "adam_beta2": float(p["adam_beta2"]),
        "adam_epsilon": float(p["adam_epsilon"]),
        "optim": str(p["optim"]),
        "gradient_accumulation_steps": int(p["gradient_accumulation_steps"]),
        "max_grad_norm": float(p["max_grad_norm"]),
        "seed": int(p["seed"]),
        "full_determinism": str(p["enable_full_determinism"]) == "true",
        "fp16": half and not bf16,
        "bf16": half and bf16,
        "logging_steps": max(1, int(p["logging_steps"])),
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": not cuda,
        "remove_unused_columns": False,
    }


def max_length(p: Mapping[str, Any], model_max: int, setting_max: int) -> int:
    """``max_seq_length`` (-1: the model's own limit), never above the model's or ``MAX_SEQ_LENGTH``."""
    requested = int(p.get("max_seq_length", -1))
    limit = min(model_max, setting_max) if model_max > 0 else setting_max
    return limit if requested <= 0 else min(requested, limit)


def perplexity(eval_loss: float) -> float:
    try:
        return math.exp(eval_loss)
    except OverflowError:
        return float("inf")
