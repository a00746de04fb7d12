"""OpenAI chat completions <-> Azure ML chat-completion scoring: validation, translation, parsing, shapes.

Why validate here: the Azure ML chat predictor asserts the conversation's shape (system only first,
user/assistant alternating, last message from the user) and answers a violation with an opaque 4xx/5xx after
the request has travelled to a GPU. Checking it in the gateway gives the caller a 400 that names the message
index, for free. The upstream does not stream, so a streamed answer is honestly three chunks (role, content,
finish) built from the complete answer. Token counts are estimates (about four characters per token): the
endpoint returns text only.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from shared.errors import PlatformError
from shared.gateway.errors import bad_request
from shared.jsonbody import parse_json_body
from shared.settings import Settings

__all__ = [
    "ChatRequest",
    "apply_stop",
    "chat_chunks_sse",
    "chat_completion",
    "estimate_tokens",
    "model_object",
    "new_completion_id",
    "parse_chat_request",
    "parse_scoring_output",
    "to_azureml_payload",
]

ROLES = ("system", "user", "assistant")
# OpenAI's newer name for the system role (o-series models); the predictor only knows "system".
ROLE_ALIASES = {"developer": "system"}
MAX_STOP_SEQUENCES = 4
# Features we cannot honour: refusing them is better than silently answering something else.
UNSUPPORTED_FIELDS = ("tools", "tool_choice", "functions", "function_call", "audio", "modalities", "prediction")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request. ``messages`` are plain ``{"role", "content"}`` dicts, ready for Azure ML."""

    model: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    user: str | None = None


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_request(f"'{name}' must be a number, got {type(value).__name__}", param=name)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low:g} and {high:g}, got {value}", param=name)
    return float(value)


def _max_tokens(body: dict[str, Any], settings: Settings) -> int:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return settings.gateway_default_max_tokens
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer, got {type(value).__name__}", param=name)
    if not 1 <= value <= settings.gateway_max_tokens:
        raise bad_request(
            f"'{name}' must be between 1 and {settings.gateway_max_tokens} (GATEWAY_MAX_TOKENS), got {value}",
            param=name,
        )
    return value


def _content(message: dict[str, Any], index: int) -> str:
    """Message content as text: a string, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part_index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad_request(
                    f"messages[{index}].content[{part_index}]: only text parts are supported, got {kind!r}",
                    param=f"messages[{index}].content",
                )
            texts.append(part["text"])
        return "".join(texts)
    raise bad_request(
        f"messages[{index}].content must be a string, got {type(content).__name__}", param=f"messages[{index}].content"
    )


def _messages(body: dict[str, Any], settings: Settings) -> list[dict[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty array of {role, content} objects", param="messages")
    if len(raw) > settings.gateway_max_messages:
        raise bad_request(
            f"too many messages: {len(raw)} (at most {settings.gateway_max_messages}, GATEWAY_MAX_MESSAGES)",
            param="messages",
        )
    messages: list[dict[str, str]] = []
    chars = 0
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object", param=f"messages[{index}]")
        role = message.get("role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise bad_request(
                f"messages[{index}].role must be one of system, user, assistant, got {message.get('role')!r}",
                param=f"messages[{index}].role",
            )
        content = _content(message, index)
        chars += len(content)
        messages.append({"role": role, "content": content})
    if chars > settings.gateway_max_chars:
        raise bad_request(
            f"messages hold {chars} characters (at most {settings.gateway_max_chars}, GATEWAY_MAX_CHARS)",
            param="messages",
        )
    _check_turns(messages)
    return messages


def _check_turns(messages: list[dict[str, str]]) -> None:
    """The Azure ML chat predictor's rules: system only first, then user/assistant alternating, user last."""
    start = 1 if messages[0]["role"] == "system" else 0
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "system" and index > 0:
            raise bad_request(
                f"messages[{index}]: a system message is only allowed as the first message",
                param=f"messages[{index}].role",
                code="invalid_conversation",
            )
        if index < start:
            continue
        expected = "user" if (index - start) % 2 == 0 else "assistant"
        if role != expected:
            if index == 0:
                where = "as the first message"
            elif index == start:
                where = "after the system message"
            else:
                where = f"after messages[{index - 1}] ({messages[index - 1]['role']})"
            raise bad_request(
                f"messages[{index}]: expected a {expected} message {where}, got {role}; "
                "user and assistant messages must alternate, starting with user",
                param=f"messages[{index}].role",
                code="invalid_conversation",
            )
    if len(messages) == start:
        raise bad_request(
            "messages: a user message must follow the system message", param="messages", code="invalid_conversation"
        )
    if messages[-1]["role"] != "user":
        last = len(messages) - 1
        raise bad_request(
            f"messages[{last}]: the last message must come from the user, got {messages[last]['role']}",
            param=f"messages[{last}].role",
            code="invalid_conversation",
        )


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(item, str) and item for item in stop):
        raise bad_request("'stop' must be a non-empty string or an array of non-empty strings", param="stop")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad_request(f"'stop' holds at most {MAX_STOP_SEQUENCES} sequences, got {len(stop)}", param="stop")
    return tuple(stop)


def parse_chat_request(body: Any, settings: Settings) -> ChatRequest:
    """Validate an OpenAI chat completions body; raise ``GatewayError`` (400) naming the field at fault."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: the name of your fine-tuned model", param="model")
    for name in UNSUPPORTED_FIELDS:
        if body.get(name):
            raise bad_request(f"'{name}' is not supported by this model", param=name, code="unsupported_parameter")
    if body.get("logprobs"):
        raise bad_request("'logprobs' is not supported by this model", param="logprobs", code="unsupported_parameter")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise bad_request(
            "only response_format {'type': 'text'} is supported", param="response_format", code="unsupported_parameter"
        )
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise bad_request(f"'n' must be 1 (one answer per request), got {n!r}", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("'user' must be a string", param="user")
    messages = _messages(body, settings)
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=_max_tokens(body, settings),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        stop=_stop(body),
        user=user,
    )


def to_azureml_payload(request: ChatRequest) -> dict[str, Any]:
    """The Azure ML chat-completion scoring body. Temperature 0 means greedy decoding (``do_sample`` false):
    Hugging Face's generate rejects a zero temperature when sampling."""
    temperature = 1.0 if request.temperature is None else request.temperature
    parameters: dict[str, Any] = {"max_new_tokens": request.max_tokens}
    if temperature <= 0:
        parameters["do_sample"] = False
    else:
        parameters.update(
            temperature=temperature, top_p=1.0 if request.top_p is None else request.top_p, do_sample=True
        )
    return {"input_data": {"input_string": request.messages, "parameters": parameters}}


class UnrecognisedOutput(PlatformError, ValueError):
    """The endpoint answered 2xx with a body we cannot read as a chat answer."""

    code = "unrecognised_output"


def parse_scoring_output(data: Any, _depth: int = 0) -> str:
    """The answer text from an Azure ML scoring response, whatever shape the deployment's predictor uses:
    ``{"output": ...}``, a plain (JSON) string, ``{"0": ...}`` or ``[{"0": ...}]`` (the shapes Azure's own
    benchmark tooling accepts), nested at most a few levels deep."""
    if _depth > 4:
        raise UnrecognisedOutput("the answer is nested too deeply")
    if isinstance(data, str):
        stripped = data.strip()
        if stripped[:1] in ("{", "[") and _depth == 0:
            try:  # some predictors JSON-encode their JSON answer once more
                return parse_scoring_output(parse_json_body(stripped, what="the answer"), _depth + 1)
            except (ValueError, UnrecognisedOutput):
                return data
        return data
    if isinstance(data, dict):
        for key in ("output", "0", "generated_text", "text"):
            if key in data:
                return parse_scoring_output(data[key], _depth + 1)
        raise UnrecognisedOutput(f"an object with keys {sorted(data)[:5]} and no 'output'")
    if isinstance(data, list):
        if not data:
            raise UnrecognisedOutput("an empty list")
        return parse_scoring_output(data[0], _depth + 1)
    raise UnrecognisedOutput(f"a JSON {type(data).__name__}")


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence (the endpoint has no stop parameter); True if it was cut."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def estimate_tokens(text: str) -> int:
    """About four characters per token (OpenAI's rule of thumb); the endpoint returns no counts."""
    return math.ceil(len(text) / 4) if text else 0


def usage(request: ChatRequest, answer: str) -> dict[str, int]:
    # ~4 tokens of chat-template framing per message, 2 to prime the assistant's turn.
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in request.messages) + 2
    completion = estimate_tokens(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(request: ChatRequest, answer: str, stopped: bool) -> str:
    """``length`` when the (estimated) answer filled ``max_tokens``, else ``stop``."""
    if not stopped and estimate_tokens(answer) >= request.max_tokens:
        return "length"
    return "stop"


def new_completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def chat_completion(request: ChatRequest, answer: str, stopped: bool, completion_id: str) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(request, answer, stopped),
            }
        ],
        "usage": usage(request, answer),
    }


def _sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def chat_chunks_sse(request: ChatRequest, answer: str, stopped: bool, completion_id: str) -> bytes:
    """The answer as OpenAI ``chat.completion.chunk`` server-sent events: role, content, finish, [usage], [DONE]."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": request.model}
    extra = {"usage": None} if request.include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "system_fingerprint": None, "choices": [choice], **extra})

    parts = [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": answer}, None),
        chunk({}, finish_reason(request, answer, stopped)),
    ]
    if request.include_usage:
        parts.append(_sse({**base, "system_fingerprint": None, "choices": [], "usage": usage(request, answer)}))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def model_object(name: str, created: int, **extra: Any) -> dict[str, Any]:
    """One entry of ``GET /v1/models`` (OpenAI's shape plus our state fields, which clients ignore)."""
    return {"id": name, "object": "model", "created": created, "owned_by": "autotune", **extra}
