"""The Azure ML chat-completion scoring contract, as pure functions (light: used by router and server alike).

Request: ``{"input_data": {"input_string": [messages...] | [[messages...], ...], "parameters": {...}}}``.
The serving predictor asserts: non-empty, system only first, user/assistant alternate, last message user.
Violations are the caller's fault (HTTP 400), worded so they can fix the request.
"""

from __future__ import annotations

from typing import Any

from shared.errors import BadInput

PIN_HEADER = "azureml-model-deployment"  # names the deployment to use (request) or that answered (response)

GENERATION_PARAMETERS = {
    "max_new_tokens": int,
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "do_sample": bool,
    "repetition_penalty": float,
    "num_beams": int,
}


class ScoringInputError(BadInput, ValueError):
    """The request breaks the scoring contract (answered with 400 and this message)."""

    code = "invalid_scoring_input"


def check_conversation(messages: Any, where: str = "input_data.input_string") -> list[dict[str, str]]:
    """Apply the predictor's assertions to one conversation."""
    if not isinstance(messages, list) or not messages:
        raise ScoringInputError(f"{where} must be a non-empty list of messages")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ScoringInputError(f"{where}[{index}] must be an object with 'role' and string 'content'")
        role = message.get("role")
        if role == "system":
            if index != 0:
                raise ScoringInputError(f"{where}[{index}]: a system message is only allowed first")
        elif role not in ("user", "assistant"):
            raise ScoringInputError(f"{where}[{index}]: role must be system, user or assistant, got {role!r}")
        out.append({"role": role, "content": message["content"]})
    turns = out[1:] if out[0]["role"] == "system" else out
    if not turns:
        raise ScoringInputError(f"{where} has only a system message; the last message must be from the user")
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            position = index + (len(out) - len(turns))
            raise ScoringInputError(
                f"{where}[{position}]: user and assistant messages must alternate, starting with user "
                f"(expected {expected}, got {message['role']})"
            )
    if turns[-1]["role"] != "user":
        raise ScoringInputError(f"{where}: the last message must be from the user")
    return out


def parse_request(body: Any) -> tuple[list[list[dict[str, str]]], bool, dict[str, Any]]:
    """(conversations, whether one conversation was sent, generation parameters)."""
    if not isinstance(body, dict) or not isinstance(body.get("input_data"), dict):
        raise ScoringInputError("the body must be a JSON object with an 'input_data' object")
    data = body["input_data"]
    raw = data.get("input_string")
    if isinstance(raw, list) and raw and all(isinstance(item, list) for item in raw):
        conversations = [
            check_conversation(item, f"input_data.input_string[{index}]") for index, item in enumerate(raw)
        ]
        single = False
    else:
        conversations = [check_conversation(raw)]
        single = True
    return conversations, single, parse_parameters(data.get("parameters"))


def parse_parameters(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScoringInputError("input_data.parameters must be an object")
    out: dict[str, Any] = {}
    for name, kind in GENERATION_PARAMETERS.items():
        if name not in raw or raw[name] is None:
            continue
        value = raw[name]
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise TypeError
                out[name] = value
            elif isinstance(value, bool):
                raise TypeError
            else:
                out[name] = kind(value)
        except (TypeError, ValueError):
            raise ScoringInputError(f"input_data.parameters.{name} must be a {kind.__name__}, got {value!r}") from None
    if "max_new_tokens" in out and not 1 <= out["max_new_tokens"] <= 4096:
        raise ScoringInputError("input_data.parameters.max_new_tokens must be between 1 and 4096")
    if "temperature" in out and out["temperature"] < 0:
        raise ScoringInputError("input_data.parameters.temperature must not be negative")
    if "top_p" in out and not 0 < out["top_p"] <= 1:
        raise ScoringInputError("input_data.parameters.top_p must be in (0, 1]")
    return out
