"""Token counting for reservations (ostiary.limits.tokens).

(Named test_token_count.py: test_tokens.py holds the bearer-token tests.) The fixed counts below
were checked against tiktoken 0.14 built offline from the same rank files.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import pytest

from ostiary.limits import tokens
from ostiary.limits.tokens import (
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW,
    completion_reservation,
    count_text,
    encoding_for,
    prompt_tokens,
    usage_tokens,
)

# The example conversation of OpenAI's cookbook "How to count tokens with tiktoken".
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
                                  "jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch "
                                                          "base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client project."},
]


def chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1-nano", "gpt-5", "gpt-5-mini",
                                   "o1", "o3-mini", "o4-mini", "chatgpt-4o-latest", "openai/gpt-4o",
                                   "ft:gpt-4o-mini-2024-07-18:acme::abc123", "GPT-4o"])
def test_o200k_models(model: str) -> None:
    assert encoding_for(model) == "o200k_base"


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "text-embedding-3-small",
                                   "claude-sonnet-4-5", "mistral-large-latest", "llama-3.1-70b", ""])
def test_cl100k_for_everything_else(model: str) -> None:
    assert encoding_for(model) == "cl100k_base"


@pytest.mark.parametrize(("text", "cl100k", "o200k"), [
    ("hello world", 2, 2),
    ("tiktoken is great!", 6, 6),
    ("", 0, 0),
    ("Grüße aus München! Привет мир. 你好，世界。", 20, 15),
    ("<|endoftext|>", 7, 7),  # plain text, never a special token: a client cannot inject one
])
def test_known_counts(text: str, cl100k: int, o200k: int) -> None:
    assert count_text(text, "gpt-4") == cl100k
    assert count_text(text, "gpt-4o") == o200k


def test_lone_surrogate_does_not_raise() -> None:
    assert count_text("a\ud800b", "gpt-4o") == count_text("a?b", "gpt-4o")


# --------------------------------------------------------------------------- chat


def test_cookbook_conversation() -> None:
    # 3 per message, 1 per name, 3 for the reply, plus every string's tokens (roles included).
    assert prompt_tokens(chat(*COOKBOOK), "gpt-4") == 128
    assert prompt_tokens(chat(*COOKBOOK), "gpt-4o") == 123


def test_one_message_is_its_text_plus_overheads() -> None:
    text = "Summarise the quarterly report in three bullet points."
    n = count_text(text, "gpt-4o")
    assert prompt_tokens(chat({"role": "user", "content": text}), "gpt-4o") == 3 + 1 + n + 3


def test_content_parts_count_like_a_string() -> None:
    parts = [{"type": "text", "text": "hello world"}, {"type": "text", "text": "tiktoken is great!"}]
    empty = prompt_tokens(chat({"role": "user", "content": ""}), "gpt-4o")
    assert prompt_tokens(chat({"role": "user", "content": parts}), "gpt-4o") == empty + 2 + 6


def test_images_are_a_fixed_estimate() -> None:
    empty = prompt_tokens(chat({"role": "user", "content": []}), "gpt-4o")
    high = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    low = {"type": "image_url", "image_url": {"url": "https://example.test/a.png", "detail": "low"}}
    assert prompt_tokens(chat({"role": "user", "content": [high, low, high]}), "gpt-4o") == \
        empty + 2 * IMAGE_TOKENS + IMAGE_TOKENS_LOW


def test_audio_is_estimated_from_its_size() -> None:
    empty = prompt_tokens(chat({"role": "user", "content": []}), "gpt-4o")

    def audio(seconds: int, fmt: str, rate: int) -> dict[str, Any]:
        data = base64.b64encode(b"\0" * (seconds * rate)).decode()
        return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}

    assert prompt_tokens(chat({"role": "user", "content": [audio(3, "wav", 32_000)]}), "gpt-4o") == empty + 30
    assert prompt_tokens(chat({"role": "user", "content": [audio(5, "mp3", 16_000)]}), "gpt-4o") == empty + 50


def test_tool_calls_and_results() -> None:
    args = '{"city": "Paris", "unit": "celsius"}'
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"}
    m = "gpt-4o"
    expected = (3 + 3 + count_text("assistant", m) + count_text("get_weather", m) + count_text(args, m)
                + 3 + count_text("tool", m) + count_text("call_1", m) + count_text("18 degrees, sunny", m))
    assert prompt_tokens(chat(call, result), m) == expected


def test_tool_definitions_count_as_their_json() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    base = chat({"role": "user", "content": "hi"})
    compact = '[{"type":"function","function":{"name":"get_weather","description":"Weather in a city",' \
              '"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
    assert prompt_tokens({**base, "tools": tools}, "gpt-4o") == prompt_tokens(base, "gpt-4o") + count_text(compact, "gpt-4o")
    assert prompt_tokens({**base, "functions": [tools[0]["function"]]}, "gpt-4o") > prompt_tokens(base, "gpt-4o")


@pytest.mark.parametrize("body", [
    chat({"role": "user", "content": None}),
    chat({"role": "user", "content": [{"type": "video", "video": {"url": "x"}}, None, 7, "plain"]}),
    chat({"role": "user", "content": {"unexpected": "object"}}),
    chat({"role": "assistant", "tool_calls": [None, {"id": "x"}, {"function": {"name": None, "arguments": {"a": 1}}}]}),
    chat({"role": "user", "content": [{"type": "text", "text": None}, {"type": "image_url"},
                                      {"type": "input_audio", "input_audio": {"format": "wav"}}]}),
    chat("not a message", None, {"role": None}),
    {"messages": "not a list"},
    {"messages": []},
    {},
    {"input": [1.5, None, {"odd": True}]},
    chat({"role": "user", "content": "x", "extra": 2**80}),
])
def test_odd_input_never_raises(body: dict[str, Any]) -> None:
    assert prompt_tokens(body, "gpt-4o") >= 0


def test_unknown_part_counts_its_json() -> None:
    part = {"type": "video", "video": {"url": "https://example.test/v.mp4"}}
    empty = prompt_tokens(chat({"role": "user", "content": []}), "gpt-4o")
    as_json = count_text('{"type":"video","video":{"url":"https://example.test/v.mp4"}}', "gpt-4o")
    assert prompt_tokens(chat({"role": "user", "content": [part]}), "gpt-4o") == empty + as_json


# --------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize(("value", "expected"), [
    ("hello world", 2),
    (["hello world", "tiktoken is great!"], 8),
    ([15339, 1917, 0], 3),  # already token ids: one each
    ([[15339, 1917], [1, 2, 3, 4]], 6),
    ([], 0),
])
def test_embeddings_input(value: Any, expected: int) -> None:
    assert prompt_tokens({"input": value}, "text-embedding-3-small") == expected


# --------------------------------------------------------------------------- reservation and usage


@pytest.mark.parametrize(("body", "expected"), [
    ({"max_completion_tokens": 50, "max_tokens": 100}, 50),
    ({"max_tokens": 100}, 100),
    ({}, 4096),
    ({"max_tokens": None, "max_completion_tokens": None}, 4096),
    ({"max_tokens": 100, "n": 3}, 300),
    ({"n": 2}, 8192),
    ({"max_tokens": 100, "n": 1}, 100),
    ({"max_tokens": 100, "n": None}, 100),
    ({"max_tokens": -5}, 4096),
    ({"max_tokens": True}, 4096),
])
def test_completion_reservation(body: dict[str, Any], expected: int) -> None:
    assert completion_reservation(body, 4096) == expected


@pytest.mark.parametrize(("usage", "expected"), [
    (None, (0, 0, 0)),
    ({}, (0, 0, 0)),
    ({"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
      "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0}}, (1200, 80, 1024)),
    ({"prompt_tokens": 12, "total_tokens": 12}, (12, 0, 0)),  # embeddings
    ({"prompt_tokens": 12, "completion_tokens": None, "prompt_tokens_details": None}, (12, 0, 0)),
    ({"prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": None}}, (12, 0, 0)),
    ({"total_tokens": 30, "completion_tokens": 10}, (20, 10, 0)),
])
def test_usage_tokens(usage: dict[str, Any] | None, expected: tuple[int, int, int]) -> None:
    assert usage_tokens(usage) == expected


# --------------------------------------------------------------------------- loading


def test_encodings_load_lazily_without_the_slow_package_import() -> None:
    # Importing the bpe_openai package parses its vocabularies into Python (0.6 s, 70 MB): the
    # extension is loaded alone, and only when a count is first needed.
    code = (
        "import sys\n"
        "from ostiary.limits import tokens\n"
        "assert tokens._backend is None and 'bpe_openai._bindings' not in sys.modules\n"
        "assert tokens.count_text('hello world', 'gpt-4o') == 2\n"
        "assert 'bpe_openai' not in sys.modules, 'the package was imported'\n"
        "assert list(tokens._tokenizers) == ['o200k_base']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_warm_loads_both_encodings() -> None:
    tokens.warm()
    assert set(tokens._tokenizers) == {"cl100k_base", "o200k_base"}
