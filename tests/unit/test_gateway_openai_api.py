"""OpenAI request validation and translation to the Azure ML scoring format, and answers back."""

import json

import pytest

from shared.gateway import openai_api
from shared.gateway.errors import GatewayError
from shared.settings import load_settings

SETTINGS = load_settings(
    {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "GATEWAY_MAX_MESSAGES": "6",
        "GATEWAY_MAX_CHARS": "100",
        "GATEWAY_MAX_TOKENS": "500",
        "GATEWAY_DEFAULT_MAX_TOKENS": "64",
    }
)


def body(messages=None, **extra):
    return {"model": "support-bot", "messages": messages or [{"role": "user", "content": "hi"}], **extra}


def rejected(payload) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        openai_api.parse_chat_request(payload, SETTINGS)
    assert info.value.status == 400
    return info.value


def test_a_valid_request_translates_to_the_azureml_input_data_format():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am going to Paris, what should I see?"},
        {"role": "assistant", "content": "The Louvre."},
        {"role": "user", "content": "And?"},
    ]
    request = openai_api.parse_chat_request(body(messages, temperature=0.6, top_p=0.9, max_tokens=200), SETTINGS)
    assert openai_api.to_azureml_payload(request) == {
        "input_data": {
            "input_string": messages,
            "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200},
        }
    }


def test_defaults_and_greedy_decoding():
    request = openai_api.parse_chat_request(body(), SETTINGS)
    assert request.max_tokens == 64  # GATEWAY_DEFAULT_MAX_TOKENS
    assert openai_api.to_azureml_payload(request)["input_data"]["parameters"] == {
        "temperature": 1.0,
        "top_p": 1.0,
        "do_sample": True,
        "max_new_tokens": 64,
    }
    greedy = openai_api.parse_chat_request(body(temperature=0, max_completion_tokens=10), SETTINGS)
    assert openai_api.to_azureml_payload(greedy)["input_data"]["parameters"] == {
        "do_sample": False,
        "max_new_tokens": 10,
    }


def test_text_parts_and_the_developer_role_are_accepted():
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
    ]
    request = openai_api.parse_chat_request(body(messages), SETTINGS)
    assert request.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("messages", "index", "words"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
            1,
            "system message is only allowed as the first",
        ),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], 1, "expected a assistant"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], 0, "expected a user"),
        ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], 1, "after the system message"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], 1, "last message must come"),
        ([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}], 1, "must be one of"),
        ([{"role": "user", "content": 3}], 0, "must be a string"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], 0, "only text parts"),
    ],
)
def test_conversation_violations_name_the_message_index(messages, index, words):
    error = rejected(body(messages))
    assert f"messages[{index}]" in error.message
    assert words in error.message
    assert error.param.startswith(f"messages[{index}]")
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_a_lone_system_message_is_rejected():
    assert "user message must follow" in rejected(body([{"role": "system", "content": "s"}])).message


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"n": 2}, "n", "must be 1"),
        ({"max_tokens": 501}, "max_tokens", "GATEWAY_MAX_TOKENS"),
        ({"max_tokens": 0}, "max_tokens", "between 1 and 500"),
        ({"max_completion_tokens": "5"}, "max_completion_tokens", "integer"),
        ({"temperature": 2.5}, "temperature", "between 0 and 2"),
        ({"temperature": True}, "temperature", "number"),
        ({"top_p": 1.5}, "top_p", "between 0 and 1"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": 5}, "stop", "string"),
        ({"tools": [{"type": "function"}]}, "tools", "not supported"),
        ({"response_format": {"type": "json_object"}}, "response_format", "text"),
        ({"model": ""}, "model", "required"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(extra, param, words):
    error = rejected(body(**extra))
    assert error.param == param
    assert words in error.message


def test_message_count_and_character_limits_come_from_settings():
    too_many = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(7)]
    assert "GATEWAY_MAX_MESSAGES" in rejected(body(too_many)).message
    assert "GATEWAY_MAX_CHARS" in rejected(body([{"role": "user", "content": "x" * 101}])).message


def test_stream_usage_stop_and_user_are_accepted():
    request = openai_api.parse_chat_request(
        body(stream=True, stream_options={"include_usage": True}, stop="END", user="u-1", seed=3), SETTINGS
    )
    assert (request.stream, request.include_usage, request.stop, request.user) == (True, True, ("END",), "u-1")


@pytest.mark.parametrize(
    "raw",
    [
        {"output": "Paris"},
        "Paris",
        {"0": "Paris"},
        [{"0": "Paris"}],
        {"output": ["Paris"]},
        json.dumps({"output": "Paris"}),
    ],
)
def test_every_known_answer_shape_is_parsed(raw):
    assert openai_api.parse_scoring_output(raw) == "Paris"


@pytest.mark.parametrize("raw", [{"result": 1}, [], 3, None, {"output": {"x": 1}}])
def test_unknown_answer_shapes_are_refused(raw):
    with pytest.raises(openai_api.UnrecognisedOutput):
        openai_api.parse_scoring_output(raw)


def test_stop_truncates_at_the_earliest_sequence():
    assert openai_api.apply_stop("one. two END three ###", ("###", "END")) == ("one. two ", True)
    assert openai_api.apply_stop("nothing to cut", ("END",)) == ("nothing to cut", False)


def test_completion_shape_with_estimated_usage_and_finish_reason():
    request = openai_api.parse_chat_request(body(max_tokens=3), SETTINGS)
    out = openai_api.chat_completion(request, "a long answer", False, "chatcmpl-x")
    assert out["object"] == "chat.completion" and out["model"] == "support-bot" and out["id"] == "chatcmpl-x"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "a long answer", "refusal": None}
    assert out["choices"][0]["finish_reason"] == "length"  # ~4 estimated tokens >= max_tokens 3
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert openai_api.chat_completion(request, "a long answer", True, "x")["choices"][0]["finish_reason"] == "stop"


def test_stream_is_role_content_finish_usage_done():
    request = openai_api.parse_chat_request(body(stream=True, stream_options={"include_usage": True}), SETTINGS)
    events = openai_api.chat_chunks_sse(request, "Hello", False, "chatcmpl-y").decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 4
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hello"}
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens"] == 2
