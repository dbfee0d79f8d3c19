"""OpenAI <-> Anthropic translation of requests, responses and streams."""

from __future__ import annotations

import orjson
import pytest

from ostiary.errors import InvalidRequest
from ostiary.wire.translate import (
    EXTRA,
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
)

TOOLS_A = [{"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_anthropic_request_with_tools_and_results_to_openai() -> None:
    body = {
        "model": "m", "max_tokens": 50, "system": "Be brief.", "top_k": 5, "stop_sequences": ["END"],
        "tools": TOOLS_A, "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u1"}, "stream": True,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "tu1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "Sunny"},
                                         {"type": "text", "text": "Thanks"}]},
        ],
    }
    out = anthropic_request_to_openai(body)
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                               "arguments": '{"city":"Paris"}'}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "tu1", "content": "Sunny"}
    assert out["messages"][4] == {"role": "user", "content": "Thanks"}
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert out["stop"] == ["END"] and out["user"] == "u1" and out["max_tokens"] == 50
    assert out["stream_options"] == {"include_usage": True}
    assert out[EXTRA] == {"top_k": 5}


def test_openai_request_to_anthropic_merges_turns_and_maps_tools() -> None:
    body = {
        "model": "route", "temperature": 1.5, "stop": "END", "user": "u1", "parallel_tool_calls": False,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "user", "content": "and?"},
        ],
        EXTRA: {"top_k": 3},
    }
    out = openai_request_to_anthropic(body, "claude-x")
    assert out["model"] == "claude-x" and out["max_tokens"] == 4096 and out["system"] == "sys"
    assert out["temperature"] == 1.0 and out["stop_sequences"] == ["END"] and out["top_k"] == 3
    assert out["messages"][0]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "AAA"}}
    assert out["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}}]}
    # The tool result and the next user text are one user turn.
    assert out["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "c1", "content": "r1"}, {"type": "text", "text": "and?"}]}
    assert out["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}
    assert out["metadata"] == {"user_id": "u1"}


def test_n_above_one_cannot_go_to_anthropic() -> None:
    with pytest.raises(InvalidRequest):
        openai_request_to_anthropic({"n": 2, "messages": [{"role": "user", "content": "x"}]}, "m")


def test_responses_both_ways() -> None:
    msg = {"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
           "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t", "name": "f",
                                                       "input": {"a": 1}}],
           "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 2}}
    o = anthropic_response_to_openai(msg)
    assert o["choices"][0]["finish_reason"] == "tool_calls"
    assert o["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    assert o["usage"]["prompt_tokens"] == 12 and o["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    back = openai_response_to_anthropic(o, "route")
    assert back["content"] == msg["content"] and back["stop_reason"] == "tool_use"
    assert back["usage"] == {"input_tokens": 12, "output_tokens": 4}


def _a_events() -> list[tuple[str, dict]]:
    return [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "claude",
                                                                 "usage": {"input_tokens": 9}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "lo"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"a":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_streams_translate_both_ways_and_round_trip() -> None:
    to_openai = AnthropicToOpenAIStream(include_usage=True)
    chunks = [c for e, d in _a_events() for c in to_openai.feed(e, d)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    args = "".join(tc["function"].get("arguments", "") for c in chunks if c["choices"]
                   for tc in c["choices"][0]["delta"].get("tool_calls", []))
    assert text == "Hello" and orjson.loads(args) == {"a": 1}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 9 and chunks[-1]["usage"]["completion_tokens"] == 7

    back = OpenAIToAnthropicStream("route")
    events = [ev for c in chunks for ev in back.feed(c)] + back.finish()
    names = [e for e, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == 2 == names.count("content_block_stop")
    starts = [d["content_block"] for e, d in events if e == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["output_tokens"] == 7
