"""The pure answer generator of the mock upstream (ostiary.mockup.answers).

Besides the answer rules, every output is validated against the official SDK models,
which is what the gateway's clients will parse.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import anthropic.types as at
import openai.types.chat as oc
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse

from ostiary.mockup import answers

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "scale": {"type": "number"},
                "detailed": {"type": "boolean"},
                "extra": {"description": "no type"},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
WEATHER_ARGS = {"city": "mock", "unit": "celsius", "days": 1, "scale": 1, "detailed": True, "extra": None}


def chat(text: Any = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        **extra,
    }


def reassemble(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Fold chat chunks into {choice index: {"content", "tool_calls", "finish_reason", "role"}}."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            acc = out.setdefault(choice["index"], {"content": "", "tool_calls": {}, "finish_reason": None})
            delta = choice["delta"]
            if "role" in delta:
                acc["role"] = delta["role"]
            acc["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                slot = acc["tool_calls"].setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if choice["finish_reason"] is not None:
                acc["finish_reason"] = choice["finish_reason"]
    return out


# --------------------------------------------------------------------------- chat


def test_text_answer_echoes_last_user_text_and_validates_as_openai_completion() -> None:
    body = chat()
    out = answers.chat_completion(body, model="served-model", created=1700000000)
    oc.ChatCompletion.model_validate(out)
    assert out["object"] == "chat.completion"
    assert out["model"] == "served-model"
    assert out["created"] == 1700000000
    assert out["id"].startswith("chatcmpl-mock-")
    assert out["system_fingerprint"]
    (choice,) = out["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Mock answer to: What is the capital of France?",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    # documented rule: 3 per message + words of content; completion = words of the answer
    assert out["usage"]["prompt_tokens"] == (3 + 2) + (3 + 6)
    assert out["usage"]["completion_tokens"] == 9
    assert out["usage"]["total_tokens"] == 5 + 9 + 9


def test_same_request_same_answer_and_different_request_different_id() -> None:
    a = answers.chat_completion(chat(), model="m", created=1)
    b = answers.chat_completion(json.loads(json.dumps(chat())), model="m", created=1)
    c = answers.chat_completion(chat("Something else"), model="m", created=1)
    assert a == b
    assert a["id"] != c["id"]
    # key order of the request does not matter
    reordered = dict(reversed(list(chat().items())))
    assert answers.chat_completion(reordered, model="m", created=1)["id"] == a["id"]


def test_content_parts_keep_text_and_ignore_images() -> None:
    parts = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this picture"},
    ]
    out = answers.chat_completion(chat(parts), model="m")
    assert out["choices"][0]["message"]["content"] == "Mock answer to: Describe this picture"


def test_long_user_text_is_truncated_to_200_chars() -> None:
    text = "x" * 500
    content = answers.chat_completion(chat(text), model="m")["choices"][0]["message"]["content"]
    assert content == "Mock answer to: " + "x" * 200


def test_no_user_message_gives_a_fixed_answer() -> None:
    body = {"model": "m", "messages": [{"role": "system", "content": "hi"}]}
    assert answers.chat_completion(body, model="m")["choices"][0]["message"]["content"] == "Mock answer."


def test_n_gives_n_choices_and_bills_all_of_them() -> None:
    one = answers.chat_completion(chat(), model="m")
    three = answers.chat_completion(chat(n=3), model="m")
    assert [c["index"] for c in three["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in three["choices"]} == {one["choices"][0]["message"]["content"]}
    assert three["usage"]["completion_tokens"] == 3 * one["usage"]["completion_tokens"]


def test_stop_cuts_before_the_earliest_stop_string() -> None:
    out = answers.chat_completion(chat("alpha beta gamma delta", stop=["delta", "beta"]), model="m")
    assert out["choices"][0]["message"]["content"] == "Mock answer to: alpha "
    assert out["choices"][0]["finish_reason"] == "stop"
    single = answers.chat_completion(chat("alpha beta gamma", stop="gamma"), model="m")
    assert single["choices"][0]["message"]["content"] == "Mock answer to: alpha beta "


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_words_with_finish_reason_length(field: str) -> None:
    out = answers.chat_completion(chat("one two three four five", **{field: 4}), model="m")
    assert out["choices"][0]["message"]["content"] == "Mock answer to: one"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 4
    roomy = answers.chat_completion(chat("one two", **{field: 100}), model="m")
    assert roomy["choices"][0]["finish_reason"] == "stop"


def test_stop_reached_within_max_tokens_is_a_stop() -> None:
    out = answers.chat_completion(chat("a b c d e f", stop="d", max_tokens=6), model="m")
    assert out["choices"][0]["message"]["content"] == "Mock answer to: a b c "  # exactly 6 words
    assert out["choices"][0]["finish_reason"] == "stop"


def test_tool_call_to_first_tool_with_arguments_from_schema() -> None:
    out = answers.chat_completion(chat(tools=[WEATHER_TOOL, TIME_TOOL]), model="m")
    oc.ChatCompletion.model_validate(out)
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert out["usage"]["completion_tokens"] > 0


def test_tool_choice_names_the_tool_or_disables_tools() -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    out = answers.chat_completion(chat(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=named), model="m")
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_time"
    assert json.loads(call["function"]["arguments"]) == {"tz": "mock"}
    for choice in ("required", "auto"):
        out = answers.chat_completion(chat(tools=[WEATHER_TOOL], tool_choice=choice), model="m")
        assert out["choices"][0]["finish_reason"] == "tool_calls"
    none = answers.chat_completion(chat(tools=[WEATHER_TOOL], tool_choice="none"), model="m")
    assert none["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in none["choices"][0]["message"]


def test_after_a_tool_result_the_answer_is_text() -> None:
    body = chat(tools=[WEATHER_TOOL])
    first = answers.chat_completion(body, model="m")["choices"][0]["message"]
    body["messages"] += [
        first,
        {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "sunny"},
    ]
    out = answers.chat_completion(body, model="m")
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][0]["message"]["content"] == "Mock answer to: What is the capital of France?"
    # the assistant tool call counts in the prompt: name + arguments words
    assert (
        out["usage"]["prompt_tokens"]
        > answers.chat_completion(chat(), model="m")["usage"]["prompt_tokens"] + 6
    )


def test_response_format_json_object_and_json_schema() -> None:
    obj = answers.chat_completion(chat(response_format={"type": "json_object"}), model="m")
    assert json.loads(obj["choices"][0]["message"]["content"]) == {
        "answer": "Mock answer to: What is the capital of France?"
    }
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {"type": "object", "properties": {"zip": {"type": ["string", "null"]}}},
        },
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    out = answers.chat_completion(chat(response_format=fmt, max_tokens=1), model="m")
    # JSON output is never truncated, so it always parses
    assert json.loads(out["choices"][0]["message"]["content"]) == {
        "name": "mock",
        "age": 1,
        "ok": True,
        "tags": [],
        "address": {"zip": "mock"},
    }
    assert out["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "messages": "hi"},
        {"model": "m", "messages": [], "n": 0},
        {"model": "m", "messages": [], "max_tokens": "ten"},
    ],
)
def test_unanswerable_requests_raise_mock_request_error(body: dict[str, Any]) -> None:
    with pytest.raises(answers.MockRequestError):
        answers.chat_completion(body, model="m")


# --------------------------------------------------------------------------- chat chunks


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"n": 2},
        {"stop": "France"},
        {"max_tokens": 3},
        {"tools": [WEATHER_TOOL]},
        {"tools": [WEATHER_TOOL], "n": 2},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_chunks_reassemble_to_the_full_answer(extra: dict[str, Any]) -> None:
    body = chat(**extra)
    full = answers.chat_completion(body, model="m", created=5)
    chunks = answers.chat_chunks(body, model="m", created=5)
    for chunk in chunks:
        oc.ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == full["id"] and chunk["created"] == 5 and chunk["model"] == "m"
        assert len(chunk["choices"]) == 1
        assert "usage" not in chunk  # include_usage not asked
    got = reassemble(chunks)
    assert sorted(got) == [c["index"] for c in full["choices"]]
    for choice in full["choices"]:
        acc = got[choice["index"]]
        assert acc["role"] == "assistant"
        assert acc["finish_reason"] == choice["finish_reason"]
        msg = choice["message"]
        if msg.get("tool_calls"):
            (call,) = msg["tool_calls"]
            assert acc["tool_calls"] == {
                0: {
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "arguments": call["function"]["arguments"],
                }
            }
            assert acc["content"] == ""
        else:
            assert acc["content"] == msg["content"]


def test_chunk_shapes_role_first_one_word_per_chunk_finish_last() -> None:
    chunks = answers.chat_chunks(chat("hello big world"), model="m")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and deltas[0]["content"] == ""
    assert [d["content"] for d in deltas[1:-1]] == ["Mock ", "answer ", "to: ", "hello ", "big ", "world"]
    assert deltas[-1] == {}
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]


def test_tool_call_chunks_follow_the_openai_streaming_shape() -> None:
    chunks = answers.chat_chunks(chat(tools=[WEATHER_TOOL]), model="m")
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks]
    header = calls[1][0]
    assert set(header) == {"index", "id", "type", "function"}
    assert header["type"] == "function" and header["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [c[0] for c in calls[2:-1]]
    assert len(fragments) > 1
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == WEATHER_ARGS
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_include_usage_adds_a_usage_chunk_and_null_usage_elsewhere() -> None:
    body = chat(stream=True, stream_options={"include_usage": True}, n=2)
    chunks = answers.chat_chunks(body, model="m")
    *rest, last = chunks
    assert last["choices"] == []
    assert last["usage"] == answers.chat_completion(body, model="m")["usage"]
    assert all(c["usage"] is None for c in rest)


# --------------------------------------------------------------------------- embeddings


def test_embeddings_are_deterministic_unit_vectors() -> None:
    out = answers.embeddings({"model": "e", "input": ["hello world", "other"]}, model="emb")
    CreateEmbeddingResponse.model_validate(out)
    assert out["object"] == "list" and out["model"] == "emb"
    assert [d["index"] for d in out["data"]] == [0, 1]
    vectors = [d["embedding"] for d in out["data"]]
    assert all(len(v) == answers.DEFAULT_EMBEDDING_DIMENSIONS for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] != vectors[1]
    again = answers.embeddings({"input": "hello world"}, model="emb")
    assert again["data"][0]["embedding"] == vectors[0]
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_dimensions_and_token_inputs() -> None:
    out = answers.embeddings({"input": "x", "dimensions": 5}, model="e")
    assert len(out["data"][0]["embedding"]) == 5
    tokens = answers.embeddings({"input": [1, 2, 3]}, model="e")
    assert len(tokens["data"]) == 1 and tokens["usage"]["prompt_tokens"] == 3
    lists = answers.embeddings({"input": [[1, 2], [3]]}, model="e")
    assert len(lists["data"]) == 2 and lists["usage"]["prompt_tokens"] == 3
    nested = answers.embeddings({"input": [[1, 2, 3]]}, model="e")
    assert nested["data"][0]["embedding"] == tokens["data"][0]["embedding"]
    assert lists["data"][0]["embedding"] != lists["data"][1]["embedding"]


def test_embeddings_base64_is_little_endian_float32_of_the_float_form() -> None:
    floats = answers.embeddings({"input": "abc", "dimensions": 8}, model="e")["data"][0]["embedding"]
    b64 = answers.embeddings({"input": "abc", "dimensions": 8, "encoding_format": "base64"}, model="e")
    raw = base64.b64decode(b64["data"][0]["embedding"])
    assert len(raw) == 8 * 4
    assert list(struct.unpack("<8f", raw)) == floats


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": []},
        {"input": [1, "a"]},
        {"input": "x", "dimensions": 0},
        {"input": "x", "encoding_format": "hex"},
    ],
)
def test_bad_embedding_requests_raise(body: dict[str, Any]) -> None:
    with pytest.raises(answers.MockRequestError):
        answers.embeddings(body, model="e")


# --------------------------------------------------------------------------- Anthropic

ANTHROPIC_TOOL = {
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
    },
}


def amsg(text: Any = "Tell me a joke", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def test_anthropic_text_message() -> None:
    out = answers.anthropic_message(amsg(), model="claude-x")
    at.Message.model_validate(out)
    assert out["type"] == "message" and out["role"] == "assistant" and out["model"] == "claude-x"
    assert out["id"].startswith("msg_")
    assert out["content"] == [{"type": "text", "text": "Mock answer to: Tell me a joke"}]
    assert out["stop_reason"] == "end_turn" and out["stop_sequence"] is None
    assert out["usage"]["input_tokens"] == (3 + 2) + (3 + 4)
    assert out["usage"]["output_tokens"] == 7
    blocks = [{"type": "text", "text": "Tell me"}, {"type": "image", "source": {"type": "base64"}}]
    assert (
        answers.anthropic_message(amsg(blocks), model="c")["content"][0]["text"] == "Mock answer to: Tell me"
    )


def test_anthropic_stop_sequences_and_max_tokens() -> None:
    out = answers.anthropic_message(amsg("one two three", stop_sequences=["two"]), model="c")
    assert out["content"][0]["text"] == "Mock answer to: one "
    assert out["stop_reason"] == "stop_sequence" and out["stop_sequence"] == "two"
    out = answers.anthropic_message(amsg("one two three", max_tokens=3), model="c")
    assert out["content"][0]["text"] == "Mock answer to:"
    assert out["stop_reason"] == "max_tokens" and out["usage"]["output_tokens"] == 3


def test_anthropic_tool_use_and_tool_result() -> None:
    out = answers.anthropic_message(amsg(tools=[ANTHROPIC_TOOL]), model="c")
    at.Message.model_validate(out)
    (block,) = out["content"]
    assert block["type"] == "tool_use" and block["name"] == "lookup" and block["id"].startswith("toolu_")
    assert block["input"] == {"query": "mock", "limit": 1}
    assert out["stop_reason"] == "tool_use"

    none = answers.anthropic_message(amsg(tools=[ANTHROPIC_TOOL], tool_choice={"type": "none"}), model="c")
    assert none["content"][0]["type"] == "text"

    second = {**ANTHROPIC_TOOL, "name": "other"}
    forced = answers.anthropic_message(
        amsg(tools=[ANTHROPIC_TOOL, second], tool_choice={"type": "tool", "name": "other"}), model="c"
    )
    assert forced["content"][0]["name"] == "other"

    body = amsg(tools=[ANTHROPIC_TOOL])
    body["messages"] += [
        {"role": "assistant", "content": out["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "42"}]},
    ]
    after = answers.anthropic_message(body, model="c")
    assert after["content"][0]["type"] == "text" and after["stop_reason"] == "end_turn"


def _fold_events(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    msg: dict[str, Any] = {}
    for name, data in events:
        assert data["type"] == name
        if name == "message_start":
            msg = {**data["message"], "content": []}
        elif name == "content_block_start":
            assert data["index"] == len(msg["content"])
            msg["content"].append(dict(data["content_block"], _json=""))
        elif name == "content_block_delta":
            block = msg["content"][data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["_json"] += delta["partial_json"]
        elif name == "content_block_stop":
            block = msg["content"][data["index"]]
            if block["type"] == "tool_use":
                block["input"] = json.loads(block["_json"])
        elif name == "message_delta":
            msg.update(data["delta"])
            msg["usage"] = {**msg["usage"], **data["usage"]}
    for block in msg["content"]:
        block.pop("_json")
    return msg


@pytest.mark.parametrize(
    "extra",
    [{}, {"max_tokens": 2}, {"stop_sequences": ["joke"]}, {"tools": [ANTHROPIC_TOOL]}],
)
def test_anthropic_events_order_and_reassembly(extra: dict[str, Any]) -> None:
    body = amsg(**extra)
    events = answers.anthropic_events(body, model="c")
    adapter = pydantic.TypeAdapter(at.RawMessageStreamEvent)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    for name, data in events:
        if name != "ping":
            adapter.validate_python(data)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    kinds = {d["delta"]["type"] for n, d in events if n == "content_block_delta"}
    assert kinds == ({"input_json_delta"} if "tools" in extra else {"text_delta"})
    assert _fold_events(events) == answers.anthropic_message(body, model="c")


def test_value_for_schema_rules() -> None:
    assert answers.value_for_schema({"type": "string"}) == "mock"
    assert answers.value_for_schema({"type": "number"}) == 1
    assert answers.value_for_schema({"type": "integer"}) == 1
    assert answers.value_for_schema({"type": "boolean"}) is True
    assert answers.value_for_schema({"type": "null"}) is None
    assert answers.value_for_schema({}) is None
    assert answers.value_for_schema({"enum": ["b", "a"]}) == "b"
    assert answers.value_for_schema({"properties": {"a": {"type": "string"}}}) == {"a": "mock"}


def test_streamed_and_plain_answers_share_ids() -> None:
    plain = answers.chat_completion(chat(tools=[WEATHER_TOOL]), model="m")
    chunks = answers.chat_chunks(
        chat(tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}), model="m"
    )
    assert {c["id"] for c in chunks} == {plain["id"]}
    assert (
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"]
        == plain["choices"][0]["message"]["tool_calls"][0]["id"]
    )
    msg = answers.anthropic_message(amsg(), model="c")
    assert answers.anthropic_events(amsg(stream=True), model="c")[0][1]["message"]["id"] == msg["id"]
