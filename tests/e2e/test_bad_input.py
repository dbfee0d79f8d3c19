"""Whatever a client sends, it gets a clear 4xx in the right format, and the gateway keeps serving."""

from __future__ import annotations

import httpx
import pytest

HELLO = [{"role": "user", "content": "Hello"}]


def post(gw: str, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{gw}{path}", content=content, headers={"content-type": "application/json", **headers},
                      timeout=10)


@pytest.mark.parametrize("body, status, fragment, param", [
    (b'{"model": "mock-1", "messages": [', 400, "not valid JSON", None),
    (b"", 400, "empty", None),
    (b"[1, 2]", 400, "must be a JSON object", None),
    (b'"text"', 400, "must be a JSON object", None),
    (b'\xff\xfe{"model": 1}', 400, "not valid JSON", None),
    (b'{"messages": []}', 400, "missing required field `model`", None),
    (b'{"model": "mock-1"}', 400, "missing required field `messages`", None),
    (b'{"model": "mock-1", "messages": []}', 400, "at least one message", "messages"),
    (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', 400, "Expected `str`", "model"),
    (b'{"model": "mock-1", "messages": [{"role": "wizard", "content": "x"}]}', 400, "Invalid enum", "messages[0].role"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": 5}]}', 400, "Expected", "messages[0].content"),
    (b'{"model": "mock-1", "messages": "hi"}', 400, "Expected `array`", "messages"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400, "Expected", "temperature"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "temperature": 7}', 400, "between 0 and 2", "temperature"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "n": 0}', 400, "between 1 and 128", "n"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', 400, "at least 1", "max_tokens"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "Expected `bool", "stream"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}', 400, "missing required field `function`", "tools[0]"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}}', 400, "only allowed when stream", "stream_options"),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "n": 1e400}', 400, "not valid JSON", None),
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}], "n": 123456789012345678901234567890}', 400, "", None),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist", "model"),
])
def test_openai_chat_bad_input(gw: str, body: bytes, status: int, fragment: str, param: str | None) -> None:
    r = post(gw, "/v1/chat/completions", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert fragment in err["message"] and err["type"] and "Traceback" not in r.text
    if param is not None:
        assert err["param"] == param
    assert r.headers["x-request-id"]


def test_oversized_body_is_413(gw: str) -> None:
    big = b'{"model": "mock-1", "messages": [{"role": "user", "content": "' + b"a" * 70_000 + b'"}]}'
    r = post(gw, "/v1/chat/completions", big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_oversized_chunked_body_is_413(gw: str) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "mock-1", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}]}'

    r = httpx.post(f"{gw}/v1/chat/completions", content=chunks(), timeout=10)
    assert r.status_code == 413


def test_too_many_messages_is_400(gw: str) -> None:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": "x"}] * 501}
    r = httpx.post(f"{gw}/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_messages"


@pytest.mark.parametrize("body, fragment", [
    (b'{"model": "mock-1", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
    (b'{"model": "mock-1", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}', "Invalid enum"),
    (b'{"model": "mock-1", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}', "at least 1"),
    ((b'{"model": "mock-1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
      b'"tool_choice": {"type": "tool"}}'), "tool_choice.name"),
    (b"not json", "not valid JSON"),
])
def test_anthropic_errors_use_the_anthropic_format(gw: str, body: bytes, fragment: str) -> None:
    r = post(gw, "/v1/messages", body)
    assert r.status_code == 400
    data = r.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert fragment in data["error"]["message"]


def test_anthropic_unknown_model_is_not_found_error(gw: str) -> None:
    r = httpx.post(f"{gw}/v1/messages", json={"model": "nope", "max_tokens": 5, "messages": HELLO})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("body, fragment", [
    (b'{"model": "mock-1"}', "missing required field `input`"),
    (b'{"model": "mock-1", "input": []}', "must not be empty"),
    (b'{"model": "mock-1", "input": [1, "a"]}', "token ids"),
    (b'{"model": "mock-1", "input": {"a": 1}}', "Expected"),
    (b'{"model": "mock-1", "input": "x", "encoding_format": "hex"}', "Invalid enum"),
])
def test_embeddings_bad_input(gw: str, body: bytes, fragment: str) -> None:
    r = post(gw, "/v1/embeddings", body)
    assert r.status_code == 400 and fragment in r.json()["error"]["message"]


def test_unknown_paths_and_methods(gw: str) -> None:
    assert httpx.post(f"{gw}/v1/nothing", json={}).status_code == 404
    assert httpx.get(f"{gw}/v1/chat/completions").status_code == 404
    r = httpx.delete(f"{gw}/v1/models")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_gateway_keeps_serving_after_abuse(gw: str) -> None:
    for body in (b"\x00" * 100, b"{" * 10_000, b'{"model": "mock-1", "messages": [' + b"[" * 5000 + b"]}"):
        assert post(gw, "/v1/chat/completions", body).status_code == 400
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "mock-1", "messages": HELLO})
    assert r.status_code == 200
