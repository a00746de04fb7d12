"""The job's heavy stages: preprocess with the chat template, LoRA fine-tune, evaluate, export.

Runs only inside the job process (torch, transformers, peft). ``job.py`` sequences the stages, writes
status and publishes events; this module does the machine learning and nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from localml.params import max_length, training_arguments
from shared.errors import BadInput

log = logging.getLogger("autotune.local.job")

ROLES = frozenset({"system", "user", "assistant"})
IGNORE_INDEX = -100


class DataError(BadInput, ValueError):
    """The data cannot train anything (too few usable rows); the message says why."""

    code = "invalid_training_data"


# Preprocess --------------------------------------------------------------------------------------------------


def usable_messages(row: Any) -> list[dict[str, str]] | None:
    """The row's messages if the preprocess step would keep it (Azure ML's rules), else None."""
    if not isinstance(row, dict):
        return None
    messages = row.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    out = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str) or not content.strip():
            return None
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        return None
    return out


def read_jsonl(path: Path) -> tuple[list[list[dict[str, str]]], int]:
    """Usable conversations and the number of rows dropped."""
    kept: list[list[dict[str, str]]] = []
    dropped = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                messages = usable_messages(json.loads(line))
            except json.JSONDecodeError:
                messages = None
            if messages is None:
                dropped += 1
            else:
                kept.append(messages)
    return kept, dropped


def encode(tokenizer: Any, messages: list[dict[str, str]], limit: int) -> dict[str, list[int]] | None:
    """Token ids of the conversation rendered by the tokenizer's chat template; labels on assistant tokens only.

    Assistant spans are found in the rendered text (content, plus the one token after it: the template's
    end-of-turn marker, so the model learns to stop) and mapped to tokens through the fast tokenizer's
    offsets, which works for any template. Truncated to ``limit`` tokens; None if no assistant token is left.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for message in messages:
        start = text.find(message["content"], cursor)
        if start < 0:
            continue
        end = start + len(message["content"])
        cursor = end
        if message["role"] == "assistant":
            spans.append((start, end))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    offsets: list[tuple[int, int]] = encoded["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        last = None
        for index, (lo, hi) in enumerate(offsets):
            if hi > start and lo < end:
                labels[index] = ids[index]
                last = index
        if last is not None and last + 1 < len(ids):
            labels[last + 1] = ids[last + 1]  # the end-of-turn token
    ids, labels = ids[:limit], labels[:limit]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def encode_all(tokenizer: Any, rows: Iterable[list[dict[str, str]]], limit: int) -> tuple[list[dict], int]:
    out, dropped = [], 0
    for messages in rows:
        item = encode(tokenizer, messages, limit)
        if item is None:
            dropped += 1
        else:
            out.append(item)
    return out, dropped


class Collator:
    """Pads a batch to its longest row; padded positions never count in the loss."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(item["input_ids"]) for item in batch)
        ids, labels, mask = [], [], []
        for item in batch:
            pad = width - len(item["input_ids"])
            ids.append(item["input_ids"] + [self.pad_id] * pad)
            labels.append(item["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(item["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


# Model -------------------------------------------------------------------------------------------------------


def is_tiny(base_dir: Path) -> bool:
    return (base_dir / "autotune_base_model.json").exists()


def lora_config(base_dir: Path, p: dict[str, Any]) -> Any:
    """LoRA on every linear layer (attention *and* MLP).

    For the tiny model the embeddings and the output head are trained in full too (``modules_to_save``):
    its weights are random, so low-rank deltas alone would have to invent a vocabulary from noise; with the
    two vocabulary matrices trainable it picks up the answers' words within a few dozen steps. A real
    pretrained checkpoint already has good embeddings, so it gets plain LoRA, as on Azure ML.
    """
    from peft import LoraConfig, TaskType

    tiny = is_tiny(base_dir)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=int(p["lora_r"]),
        lora_alpha=int(p["lora_alpha"]),
        lora_dropout=float(p["lora_dropout"]),
        target_modules=(
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] if tiny else "all-linear"
        ),
        modules_to_save=["embed_tokens", "lm_head"] if tiny else None,
    )


def load_base(base_dir: Path, p: dict[str, Any]) -> tuple[Any, Any, bool, bool]:
    """(model, tokenizer, on a GPU, in bf16). Half precision only on a GPU, bf16 only where supported."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    trust = str(p.get("trust_remote_code", "false")) == "true"
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=trust)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"the base model at {base_dir} has no chat template; choose a chat model (LOCAL_BASE_MODEL)")
    bf16 = cuda and str(p.get("precision")) == "16" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, trust_remote_code=trust)
    if cuda:
        model = model.to("cuda")
    return model, tokenizer, cuda, bf16


class Progress:
    """A transformers callback reporting step, epoch and loss (and letting the job honour cancellation)."""

    def __new__(cls, report: Callable[[dict[str, Any]], None]):
        from transformers import TrainerCallback

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                report({"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch})

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    report({"step": state.global_step, "max_steps": state.max_steps, "loss": float(logs["loss"])})
                if logs and "eval_loss" in logs:
                    report({"step": state.global_step, "eval_loss": float(logs["eval_loss"])})

        return _Callback()


def fine_tune(
    base_dir: Path,
    p: dict[str, Any],
    train_rows: list[list[dict[str, str]]],
    test_rows: list[list[dict[str, str]]],
    work_dir: Path,
    setting_max_len: int,
    report: Callable[[dict[str, Any]], None],
) -> tuple[Any, Any, dict[str, float]]:
    """Preprocess, train and evaluate; returns (model, tokenizer, metrics)."""
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(int(p["seed"]))
    model, tokenizer, cuda, bf16 = load_base(base_dir, p)
    limit = max_length(p, int(getattr(model.config, "max_position_embeddings", 0) or 0), setting_max_len)
    report({"stage": "preprocess"})
    train, dropped_train = encode_all(tokenizer, train_rows, limit)
    test, dropped_test = encode_all(tokenizer, test_rows, limit)
    if not train:
        raise DataError("no training row has assistant tokens within max_seq_length; nothing to learn from")
    log.info(
        "preprocess: %d train rows (%d dropped), %d test rows (%d dropped), max_seq_length %d",
        len(train),
        dropped_train,
        len(test),
        dropped_test,
        limit,
    )
    if str(p["apply_lora"]) == "true":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(base_dir, p))
    report({"stage": "finetune", "step": 0})
    arguments = training_arguments(p, output_dir=str(work_dir / "trainer"), cuda=cuda, bf16=bf16)
    if test:
        arguments["eval_strategy"] = "epoch"  # an eval loss per epoch, for the run's loss curve
    args = TrainingArguments(**arguments)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test or None,
        data_collator=Collator(tokenizer.pad_token_id),
        callbacks=[Progress(report)],
    )
    result = trainer.train()
    metrics = {"train_loss": float(result.training_loss)}
    report({"stage": "evaluate"})
    if test:
        evaluation = trainer.evaluate()
        eval_loss = float(evaluation["eval_loss"])
        metrics["eval_loss"] = eval_loss
        metrics["perplexity"] = math.exp(min(eval_loss, 700.0))
    metrics["train_rows"] = float(len(train))
    metrics["test_rows"] = float(len(test))
    return trainer.model, tokenizer, metrics


# Export ------------------------------------------------------------------------------------------------------


def save_hf(model: Any, tokenizer: Any, p: dict[str, Any], out: Path) -> None:
    """The fine-tuned weights as a Hugging Face folder (LoRA merged when ``merge_lora_weights`` is true)."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and str(p["merge_lora_weights"]) == "true":
        model = model.merge_and_unload()
    model = model.to("cpu")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def export_mlflow(hf_dir: Path, out: Path, metadata: dict[str, Any]) -> Path:
    """An MLflow model folder (pyfunc flavour, ``localml.pyfunc`` loads it): the artifact type the
    Azure ML pipeline's ``mlflow_model_folder`` output has, so registration and deployment treat it alike."""
    import mlflow.pyfunc

    if out.exists():
        shutil.rmtree(out)
    mlflow.pyfunc.save_model(
        path=str(out),
        loader_module="localml.pyfunc",
        data_path=str(hf_dir),
        pip_requirements=["torch", "transformers", "peft", "mlflow"],
        metadata=metadata,
    )
    return out


def hf_folder(mlflow_dir: Path) -> Path:
    """The Hugging Face folder inside an exported MLflow model folder."""
    from localml.pyfunc import model_data_dir

    return model_data_dir(mlflow_dir)
