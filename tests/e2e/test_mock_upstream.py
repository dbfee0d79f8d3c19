"""The mock upstream as a real process, driven by the official openai and anthropic SDKs.

One server (the session fixture ``mockup``) is reset before each test; tests of
command-line flags start their own server through ``mockup_factory``.
"""

from __future__ import annotations

import base64
import json
import math
import signal
import struct
import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,
    anthropic.APIConnectionError,
    httpx.TransportError,
)
try:  # recent openai SDKs are built on httpx2
    import httpx2

    CONNECTION_ERRORS += (httpx2.TransportError,)
except ImportError:  # pragma: no cover
    pass

# Typed Any: the SDKs type these parameters as TypedDict unions, irrelevant here.
MESSAGES: Any = [{"role": "user", "content": "Hello there"}]
EXPECTED = "Mock answer to: Hello there"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}
ANTHROPIC_TOOL: Any = {
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}


@pytest.fixture(autouse=True)
def _clean(mockup: Any) -> None:
    mockup.reset()


@pytest.fixture
def oai(mockup: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=mockup.url + "/v1", api_key="sk-test", max_retries=0, timeout=5)


@pytest.fixture
def claude(mockup: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mockup.url, api_key="sk-ant-test", max_retries=0, timeout=5)


def sse_data(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


# --------------------------------------------------------------------------- OpenAI


def test_chat_completion_with_the_openai_sdk(oai: openai.OpenAI, mockup: Any) -> None:
    r = oai.chat.completions.create(model="mock-small", messages=MESSAGES)
    assert r.id.startswith("chatcmpl-mock-")
    assert r.model == "mock-small"
    assert r.choices[0].message.content == EXPECTED
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == 5 and r.usage.prompt_tokens == 5
    stats = mockup.stats()
    assert stats["requests"] == 1
    assert stats["by_model"] == {"mock-small": 1}
    assert stats["by_path"] == {"/v1/chat/completions": 1}


def test_streaming_chat_reassembles_to_the_full_answer(oai: openai.OpenAI) -> None:
    full = oai.chat.completions.create(model="m", messages=MESSAGES, n=2)
    stream = oai.chat.completions.create(
        model="m",
        messages=MESSAGES,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: ""}
    finish = {}
    usage = None
    for chunk in stream:
        assert chunk.id == full.id
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert texts == {0: EXPECTED, 1: EXPECTED}
    assert finish == {0: "stop", 1: "stop"}
    assert usage is not None and full.usage is not None
    assert usage.completion_tokens == full.usage.completion_tokens == 10


def test_stream_wire_format_ends_with_done(mockup: Any) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", mockup.url + "/v1/chat/completions", json=body, timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in map(json.loads, sse_data(events[:-1])))
        == EXPECTED
    )


def test_tool_calls_plain_and_streaming(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model="m", messages=MESSAGES, tools=[WEATHER])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}

    stream = oai.chat.completions.create(model="m", messages=MESSAGES, tools=[WEATHER], stream=True)
    ids, name, args, finish = set(), "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                assert tc.index == 0
                if tc.id:
                    ids.add(tc.id)
                name += (tc.function and tc.function.name) or ""
                args += (tc.function and tc.function.arguments) or ""
            finish = choice.finish_reason or finish
    assert ids == {call.id}
    assert name == "get_weather" and json.loads(args) == {"city": "mock", "days": 1}
    assert finish == "tool_calls"


def test_embeddings_with_the_sdk_default_base64(oai: openai.OpenAI, mockup: Any) -> None:
    # The SDK asks for base64 by default and decodes it itself: a wrong encoding breaks here.
    r = oai.embeddings.create(model="mock-embedding", input=["alpha", "beta"])
    assert [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in r.data)
    assert math.isclose(sum(x * x for x in r.data[0].embedding), 1.0, rel_tol=1e-5)
    raw = httpx.post(
        mockup.url + "/v1/embeddings", json={"model": "e", "input": "alpha", "dimensions": 8}, timeout=5
    ).json()
    b64 = httpx.post(
        mockup.url + "/v1/embeddings",
        json={"model": "e", "input": "alpha", "dimensions": 8, "encoding_format": "base64"},
        timeout=5,
    ).json()
    floats = raw["data"][0]["embedding"]
    assert len(floats) == 8
    assert list(struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))) == floats
    assert oai.embeddings.create(model="e", input="alpha", dimensions=8).data[0].embedding == floats


def test_models_list(oai: openai.OpenAI) -> None:
    assert {m.id for m in oai.models.list()} == {"mock-small", "mock-large", "mock-embedding"}


def test_stats_show_what_was_forwarded(mockup: Any) -> None:
    body = {"model": "m", "messages": MESSAGES, "x_unknown_field": {"kept": True}}
    r = httpx.post(
        mockup.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-forwarded", "X-Custom": "Yes"},
        timeout=5,
    )
    assert r.status_code == 200
    stats = mockup.stats()
    assert stats["last_body"] == body
    assert stats["last_headers"]["authorization"] == "Bearer sk-forwarded"
    assert stats["last_headers"]["x-custom"] == "Yes"
    mockup.reset()
    assert mockup.stats() == {
        "requests": 0,
        "active": 0,
        "by_model": {},
        "by_path": {},
        "last_headers": {},
        "last_body": None,
        "behaviours": {},
    }


def test_bad_requests_get_openai_errors(mockup: Any) -> None:
    r = httpx.post(mockup.url + "/v1/chat/completions", content=b"{not json", timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(mockup.url + "/v1/chat/completions", json={"messages": MESSAGES}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(mockup.url + "/v1/embeddings", json={"model": "e", "input": []}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = httpx.get(mockup.url + "/v1/nothing-here", timeout=5)
    assert r.status_code == 404 and "error" in r.json()


# --------------------------------------------------------------------------- Azure


def test_azure_chat_and_embeddings(mockup: Any) -> None:
    az = openai.AzureOpenAI(
        azure_endpoint=mockup.url, api_key="azure-key", api_version="2024-10-21", max_retries=0, timeout=5
    )
    r = az.chat.completions.create(model="my-gpt-deployment", messages=MESSAGES)
    assert r.model == "my-gpt-deployment"
    assert r.choices[0].message.content == EXPECTED
    e = az.embeddings.create(model="my-embed-deployment", input="hi")
    assert len(e.data[0].embedding) == 16
    stats = mockup.stats()
    assert stats["by_model"] == {"my-gpt-deployment": 1, "my-embed-deployment": 1}
    assert "/openai/deployments/my-gpt-deployment/chat/completions" in stats["by_path"]
    assert stats["last_headers"]["api-key"] == "azure-key"


def test_azure_requires_the_api_key_header_and_api_version(mockup: Any) -> None:
    url = mockup.url + "/openai/deployments/dep/chat/completions"
    body = {"messages": MESSAGES}
    r = httpx.post(url + "?api-version=2024-10-21", json=body, timeout=5)
    assert r.status_code == 401 and "error" in r.json()
    r = httpx.post(url, json=body, headers={"api-key": "k"}, timeout=5)
    assert r.status_code == 400
    r = httpx.post(url + "?api-version=2024-10-21", json=body, headers={"api-key": "k"}, timeout=5)
    assert r.status_code == 200 and r.json()["model"] == "dep"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_message_with_the_sdk(claude: anthropic.Anthropic, mockup: Any) -> None:
    m = claude.messages.create(model="claude-mock", max_tokens=100, messages=MESSAGES)
    assert m.id.startswith("msg_") and m.model == "claude-mock"
    assert m.content[0].type == "text" and m.content[0].text == EXPECTED
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 5
    assert mockup.stats()["last_headers"]["anthropic-version"]


def test_anthropic_streaming_text_and_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="c", max_tokens=100, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == EXPECTED and final.content[0].text == EXPECTED
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5

    with claude.messages.stream(
        model="c",
        max_tokens=100,
        messages=MESSAGES,
        tools=[ANTHROPIC_TOOL],
    ) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"query": "mock"}
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_anthropic_raw_event_sequence(mockup: Any) -> None:
    body = {"model": "c", "max_tokens": 3, "messages": MESSAGES, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", mockup.url + "/v1/messages", json=body, headers=headers, timeout=5) as r:
        assert r.status_code == 200
        raw = r.read().decode()
    events = [e.split("\n") for e in raw.split("\n\n") if e]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = json.loads(events[-2][1].removeprefix("data: "))
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] == 3


def test_anthropic_requires_key_and_version(mockup: Any) -> None:
    body = {"model": "c", "max_tokens": 10, "messages": MESSAGES}
    r = httpx.post(
        mockup.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}, timeout=5
    )
    assert r.status_code == 401
    assert r.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    r = httpx.post(mockup.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    r = httpx.post(mockup.url + "/v1/messages", content=b"{", headers=headers, timeout=5)
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = httpx.post(
        mockup.url + "/v1/messages", json={"model": "c", "messages": MESSAGES}, headers=headers, timeout=5
    )
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- failure injection


def test_429_carries_retry_after(mockup: Any, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    mockup.behaviour(model="*", fail="429", times=2, retry_after=3)
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.response.headers["retry-after-ms"] == "3000"
    with pytest.raises(anthropic.RateLimitError) as aerr:
        claude.messages.create(model="c", max_tokens=10, messages=MESSAGES)
    assert aerr.value.response.headers["retry-after"] == "3"
    assert aerr.value.body["error"]["type"] == "rate_limit_error"
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices


@pytest.mark.parametrize("code", ["500", "503"])
def test_server_errors(mockup: Any, oai: openai.OpenAI, code: str) -> None:
    mockup.behaviour(model="m", fail=code, times=1)
    with pytest.raises(openai.InternalServerError) as err:
        oai.chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.status_code == int(code)
    assert err.value.body["type"] == "server_error"


def test_times_counts_down_and_the_sdk_retries_through(mockup: Any) -> None:
    # retry_after 0.05 s -> retry-after-ms: 50, which the SDK honours: fast retries.
    mockup.behaviour(model="m", fail="429", times=2, retry_after=0.05)
    assert mockup.stats()["behaviours"]["m"]["times"] == 2
    client = openai.OpenAI(base_url=mockup.url + "/v1", api_key="k", max_retries=3, timeout=5)
    t0 = time.monotonic()
    r = client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - t0 < 2
    assert r.choices[0].message.content == EXPECTED
    stats = mockup.stats()
    assert stats["requests"] == 3 and stats["by_model"] == {"m": 3}
    assert stats["last_headers"]["x-stainless-retry-count"] == "2"
    assert stats["behaviours"] == {}


def test_behaviour_per_model_wildcard_and_clear(mockup: Any, oai: openai.OpenAI) -> None:
    mockup.behaviour(model="bad", fail="503")  # no times: until cleared
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="bad", messages=MESSAGES)
    assert oai.chat.completions.create(model="good", messages=MESSAGES).choices
    mockup.behaviour(model="bad", fail=None)
    assert oai.chat.completions.create(model="bad", messages=MESSAGES).choices

    mockup.behaviour(model="*", fail="500", times=1)
    mockup.behaviour(model="special", fail="429", times=1)
    with pytest.raises(openai.RateLimitError):  # the exact model wins over "*"
        oai.chat.completions.create(model="special", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        oai.embeddings.create(model="any-model", input="x")
    assert oai.embeddings.create(model="any-model", input="x").data


def test_control_api_rejects_bad_specs(mockup: Any) -> None:
    for spec in ({"fail": "explode"}, {"fail": "500", "times": 0}, {"fail": "500", "retry_after": -1}):
        r = httpx.post(mockup.url + "/_mock/behaviour", json=spec, timeout=5)
        assert r.status_code == 400, spec
    assert mockup.behaviour(fail=502)["behaviour"]["fail"] == "502"  # any error code works


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("mode", ["reset", "cut"])
def test_reset_and_cut_are_connection_errors(
    mockup: Any, oai: openai.OpenAI, mode: str, stream: bool
) -> None:
    mockup.behaviour(model="*", fail=mode, times=1)
    with pytest.raises(CONNECTION_ERRORS):
        if stream:
            for _ in oai.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                pass
        else:
            oai.chat.completions.create(model="m", messages=MESSAGES)
    # one-shot: the next request is fine
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices


def test_cut_sends_a_few_chunks_then_drops_without_done(mockup: Any) -> None:
    mockup.behaviour(model="*", fail="cut", times=1)
    received: list[str] = []
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", mockup.url + "/v1/chat/completions", json=body, timeout=5) as r,
    ):
        assert r.status_code == 200
        received.extend(r.iter_lines())
    data = sse_data(received)
    assert 1 <= len(data) < 8
    assert "[DONE]" not in data
    assert json.loads(data[0])["object"] == "chat.completion.chunk"


def test_anthropic_reset_and_cut(mockup: Any, claude: anthropic.Anthropic) -> None:
    mockup.behaviour(model="*", fail="reset", times=1)
    with pytest.raises(CONNECTION_ERRORS):
        claude.messages.create(model="c", max_tokens=10, messages=MESSAGES)
    mockup.behaviour(model="*", fail="cut", times=1)
    seen: list[str] = []
    with (
        pytest.raises(CONNECTION_ERRORS),
        claude.messages.stream(model="c", max_tokens=10, messages=MESSAGES) as s,
    ):
        seen.extend(event.type for event in s)
    assert seen and "message_stop" not in seen


def test_timeout_holds_the_request_until_the_client_gives_up(mockup: Any, oai: openai.OpenAI) -> None:
    mockup.behaviour(model="*", fail="timeout", times=1)
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - t0 >= 0.45
    assert oai.chat.completions.create(model="m", messages=MESSAGES).choices


def test_slow_first_token_delays_the_first_chunk_not_the_headers(mockup: Any) -> None:
    mockup.behaviour(model="*", fail="slow_first_token", times=2, delay_ms=400)
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    t0 = time.monotonic()
    with httpx.stream("POST", mockup.url + "/v1/chat/completions", json=body, timeout=5) as r:
        t_head = time.monotonic() - t0
        lines = r.iter_lines()
        first = next(lines)
        t_first = time.monotonic() - t0
        rest = list(lines)
    assert r.status_code == 200 and t_head < 0.3
    assert t_first >= 0.38 and first.startswith("data: ")
    assert "data: [DONE]" in rest
    t0 = time.monotonic()
    r2 = httpx.post(mockup.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=5)
    assert r2.status_code == 200 and time.monotonic() - t0 >= 0.38


# --------------------------------------------------------------------------- command-line flags


def test_flags_require_key_latency_and_pacing(mockup_factory: Any) -> None:
    server = mockup_factory("--require-key", "secret", "--latency-ms", "150", "--tokens-per-second", "100")
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0, timeout=5)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="m", messages=MESSAGES)
    right = wrong.with_options(api_key="secret")
    t0 = time.monotonic()
    r = right.chat.completions.create(model="m", messages=MESSAGES)
    # 150 ms latency + 5 tokens at 100 tokens/s
    assert time.monotonic() - t0 >= 0.19 and r.choices[0].message.content == EXPECTED

    arrivals = []
    t0 = time.monotonic()
    for chunk in right.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 5
    assert arrivals[0] >= 0.14  # latency before the first byte
    # Paced: the last token cannot arrive before latency + 5 tokens at 100/s. (A lower bound on the
    # total holds however loaded the machine is; a bound on the gap between chunks would not.)
    assert arrivals[-1] >= 0.19


def test_flags_fail_rate_and_mode(mockup_factory: Any) -> None:
    server = mockup_factory("--fail-rate", "1", "--fail-mode", "429", "--retry-after", "7")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0, timeout=5)
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert err.value.response.headers["retry-after"] == "7"
    assert server.stats()["requests"] == 3
    assert httpx.get(server.url + "/v1/models", timeout=5).status_code == 200  # not a model call


def test_prints_the_url_and_stops_promptly_on_sigterm_with_a_request_hanging(mockup_factory: Any) -> None:
    server = mockup_factory()
    assert server.output().strip() == f"mock upstream listening on {server.url}"
    server.behaviour(fail="timeout")
    hung = threading.Thread(
        target=lambda: httpx.post(
            server.url + "/v1/chat/completions", json={"model": "m", "messages": []}, timeout=30
        ),
        daemon=True,
    )
    hung.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(5) == 0
    assert time.monotonic() - t0 < 3
    assert "Traceback" not in server.output()
