"""The gateway's API through the official openai and anthropic clients, against a real mock upstream."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import UPSTREAM_KEY

CHAT_ROUTES = ["mock-1", "gpt", "azure", "claude"]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


def oai(gw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw}/v1", api_key="unused", max_retries=0, timeout=10)


def ant(gw: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw, api_key="unused", max_retries=0, timeout=10)


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_openai_chat(gw: str, route: str) -> None:
    r = oai(gw).chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": "Hello gateway"}])
    assert r.headers["x-request-id"] and r.headers["x-ostiary-config-version"]
    c = r.parse()
    assert "Hello gateway" in (c.choices[0].message.content or "")
    assert c.choices[0].finish_reason == "stop"
    assert c.usage is not None and c.usage.completion_tokens > 0


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_openai_stream_with_usage(gw: str, route: str) -> None:
    stream = oai(gw).chat.completions.create(model=route, messages=[{"role": "user", "content": "Stream this"}],
                                             stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "Stream this" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"


def test_usage_chunk_only_when_asked(gw: str) -> None:
    chunks = list(oai(gw).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}],
                                                  stream=True))
    assert all(ch.usage is None for ch in chunks) and chunks[-1].choices


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_openai_tool_calls(gw: str, route: str) -> None:
    c = oai(gw).chat.completions.create(model=route, messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                        tools=[WEATHER])  # type: ignore[list-item]
    call = c.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    assert c.choices[0].finish_reason == "tool_calls"
    # Send the tool result back: the conversation continues.
    c2 = oai(gw).chat.completions.create(model=route, tools=[WEATHER], messages=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 20C"},
    ])
    assert c2.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_openai_streamed_tool_calls(gw: str, route: str) -> None:
    chunks = list(oai(gw).chat.completions.create(
        model=route, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], stream=True))  # type: ignore[list-item]
    name = "".join(tc.function.name or "" for ch in chunks if ch.choices
                   for tc in (ch.choices[0].delta.tool_calls or []) if tc.function)
    args = "".join(tc.function.arguments or "" for ch in chunks if ch.choices
                   for tc in (ch.choices[0].delta.tool_calls or []) if tc.function)
    assert name == "get_weather" and isinstance(json.loads(args), dict)


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_anthropic_messages(gw: str, route: str) -> None:
    m = ant(gw).messages.create(model=route, max_tokens=200, messages=[{"role": "user", "content": "Hi Claude"}])
    assert m.type == "message" and m.role == "assistant"
    assert "Hi Claude" in m.content[0].text  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn" and m.usage.output_tokens > 0


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_anthropic_stream(gw: str, route: str) -> None:
    with ant(gw).messages.stream(model=route, max_tokens=200,
                                 messages=[{"role": "user", "content": "Stream it"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert "Stream it" in text and final.stop_reason == "end_turn"


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_anthropic_tool_use_streamed_and_not(gw: str, route: str) -> None:
    tools = [{"name": "get_weather", "description": "Weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    m = ant(gw).messages.create(model=route, max_tokens=200, tools=tools,  # type: ignore[arg-type]
                                messages=[{"role": "user", "content": "Weather?"}])
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and m.stop_reason == "tool_use"
    with ant(gw).messages.stream(model=route, max_tokens=200, tools=tools,  # type: ignore[arg-type]
                                 messages=[{"role": "user", "content": "Weather?"}]) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content if b.type == "tool_use"] == ["tool_use"]
    m2 = ant(gw).messages.create(model=route, max_tokens=200, tools=tools, messages=[  # type: ignore[arg-type]
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]},
    ])
    assert m2.stop_reason == "end_turn"


async def test_async_clients(gw: str) -> None:
    o = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="unused", max_retries=0)
    c = await o.chat.completions.create(model="claude", messages=[{"role": "user", "content": "async"}])
    assert "async" in (c.choices[0].message.content or "")
    stream = await o.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "async s"}],
                                             stream=True)
    assert "async s" in "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    a = anthropic.AsyncAnthropic(base_url=gw, api_key="unused", max_retries=0)
    m = await a.messages.create(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "async a"}])
    assert "async a" in m.content[0].text  # type: ignore[union-attr]
    await o.close()
    await a.close()


@pytest.mark.parametrize("route", ["mock-1", "gpt", "azure"])
def test_embeddings(gw: str, route: str) -> None:
    e = oai(gw).embeddings.create(model=route, input=["one", "two"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0
    assert e.data[0].embedding != e.data[1].embedding
    again = oai(gw).embeddings.create(model=route, input=["one"])
    assert again.data[0].embedding == e.data[0].embedding


def test_embeddings_on_an_anthropic_route_is_a_clear_400(gw: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai(gw).embeddings.create(model="claude", input="x")
    assert "does not serve embeddings" in str(e.value)


def test_unknown_fields_and_credentials_reach_the_upstream(gw: str, mock: httpx.Client) -> None:
    oai(gw).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}], seed=7,
                                    user="alice", metadata={"k": "v"}, n=2,
                                    extra_body={"guided_json": {"type": "object"}, "top_k": 3})
    stats = mock.get("/_mock/stats").json()
    body, headers = stats["last_body"], stats["last_headers"]
    assert body["model"] == "gpt-up"  # the route's upstream model
    assert body["guided_json"] == {"type": "object"} and body["top_k"] == 3
    assert body["seed"] == 7 and body["user"] == "alice" and body["n"] == 2
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    oai(gw).chat.completions.create(model="azure", messages=[{"role": "user", "content": "x"}])
    assert mock.get("/_mock/stats").json()["last_headers"]["api-key"] == UPSTREAM_KEY
    ant(gw).messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                        extra_body={"top_k": 2})
    stats = mock.get("/_mock/stats").json()
    assert stats["last_headers"]["x-api-key"] == UPSTREAM_KEY and stats["last_body"]["top_k"] == 2


def test_n_choices(gw: str) -> None:
    c = oai(gw).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}], n=3)
    assert [ch.index for ch in c.choices] == [0, 1, 2]


def test_json_response_format(gw: str) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    c = oai(gw).chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert "answer" in json.loads(c.choices[0].message.content or "")


def test_models(gw: str) -> None:
    ids = [m.id for m in oai(gw).models.list()]
    assert ids == ["mock-1", "gpt", "azure", "claude", "flaky", "lonely", "breaker", "slow", "dead"]
    assert oai(gw).models.retrieve("claude").id == "claude"
    with pytest.raises(openai.NotFoundError):
        oai(gw).models.retrieve("nope")


def test_health_and_request_ids(gw: str) -> None:
    assert httpx.get(f"{gw}/healthz").json() == {"status": "alive"}
    r = httpx.get(f"{gw}/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    r = httpx.post(f"{gw}/v1/chat/completions", headers={"x-request-id": "trace-abc.123"},
                   json={"model": "mock-1", "messages": [{"role": "user", "content": "x"}]})
    assert r.headers["x-request-id"] == "trace-abc.123"
    r = httpx.get(f"{gw}/nowhere", headers={"x-request-id": "bad id with spaces"})
    assert r.status_code == 404 and r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32 and "x-ostiary-config-version" in r.headers
