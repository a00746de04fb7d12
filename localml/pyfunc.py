"""The MLflow pyfunc flavour of an exported chat model (``loader_module`` of the job's MLflow model folder).

``mlflow.pyfunc.load_model(folder)`` calls ``_load_pyfunc(data_path)``; the returned predictor takes the
scoring contract's ``input_data`` (messages + parameters) and answers the assistant's next message, the way
Azure ML's chat-completion serving predictor does. Heavy (torch, transformers): scoring servers only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from localml.scoring import check_conversation, parse_parameters

DEFAULT_MAX_NEW_TOKENS = 64


def model_data_dir(mlflow_dir: Path) -> Path:
    """The Hugging Face folder that ``save_model(data_path=...)`` copied into the MLflow model folder."""
    import yaml

    spec = yaml.safe_load((Path(mlflow_dir) / "MLmodel").read_text())
    data = spec["flavors"]["python_function"]["data"]
    return Path(mlflow_dir) / data


class ChatPredictor:
    """Generates one assistant reply per conversation; one generation at a time (torch is not re-entrant here)."""

    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self._lock = threading.Lock()

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        data = model_input.get("input_data", model_input) if isinstance(model_input, dict) else model_input
        raw = data.get("input_string") if isinstance(data, dict) else data
        parameters = parse_parameters(data.get("parameters") if isinstance(data, dict) else params)
        if isinstance(raw, list) and raw and all(isinstance(item, list) for item in raw):
            return [self.generate(check_conversation(item), parameters) for item in raw]
        return self.generate(check_conversation(raw), parameters)

    def generate(self, messages: list[dict[str, str]], parameters: dict[str, Any]) -> str:
        torch = self._torch
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoded = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(self.device)
        options = dict(parameters)
        options.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        if not options.get("do_sample"):
            options.pop("temperature", None)
            options.pop("top_p", None)
            options.pop("top_k", None)
            options["do_sample"] = False
        elif options.get("temperature") == 0:
            options["do_sample"] = False
            options.pop("temperature")
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **encoded,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **options,
            )
        new_tokens = output[0][encoded["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def _load_pyfunc(data_path: str) -> ChatPredictor:
    return ChatPredictor(data_path)
