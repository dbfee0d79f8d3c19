"""Retries, fallbacks, timeouts, circuit breakers and cut streams, against injected upstream failures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import UPSTREAM_KEY, api_config
from tests.e2e.test_api import oai
from tests.support import MockUpstream, gateway

HELLO = [{"role": "user", "content": "Hello"}]


def fail(mock: httpx.Client, model: str, mode: str, times: int | None = None, **kw: object) -> None:
    mock.post("/_mock/behaviour", json={"model": model, "fail": mode, "times": times, **kw}).raise_for_status()


def counts(mock: httpx.Client) -> dict[str, int]:
    return mock.get("/_mock/stats").json()["by_model"]


@pytest.mark.parametrize("mode", ["500", "503", "reset"])
def test_retry_on_the_same_deployment(gw: str, mock: httpx.Client, mode: str) -> None:
    fail(mock, "flaky-a", mode, times=1)
    c = oai(gw).chat.completions.create(model="flaky", messages=HELLO)  # type: ignore[arg-type]
    assert c.model == "flaky-a" and counts(mock) == {"flaky-a": 2}


def test_fallback_to_the_next_deployment(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "500")  # until reset: both attempts fail
    c = oai(gw).chat.completions.create(model="flaky", messages=HELLO)  # type: ignore[arg-type]
    assert c.model == "flaky-b" and counts(mock) == {"flaky-a": 2, "flaky-b": 1}


def test_fallback_to_another_route(gw: str, mock: httpx.Client) -> None:
    fail(mock, "lonely", "503")
    c = oai(gw).chat.completions.create(model="lonely", messages=HELLO)  # type: ignore[arg-type]
    assert c.model == "gpt-up" and counts(mock) == {"lonely": 2, "gpt-up": 1}


def test_retry_after_is_honoured(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "429", times=1, retry_after=1)
    t0 = time.monotonic()
    c = oai(gw).chat.completions.create(model="flaky", messages=HELLO)  # type: ignore[arg-type]
    assert c.model == "flaky-a" and time.monotonic() - t0 >= 0.95  # it waited as told, then retried


def test_everything_rate_limited_gives_429_with_retry_after(gw: str, mock: httpx.Client) -> None:
    fail(mock, "*", "429", retry_after=60)  # longer than retry_after_max: no waiting, no success
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "flaky", "messages": HELLO})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["error"]["code"] == "upstream_rate_limited"


def test_first_token_timeout_is_a_504(gw: str, mock: httpx.Client) -> None:
    fail(mock, "slow", "timeout")
    t0 = time.monotonic()
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "slow", "messages": HELLO}, timeout=10)
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 5  # bounded by the 0.5 s first-token timeout, not the mock's hour


def test_stream_first_token_timeout(gw: str, mock: httpx.Client) -> None:
    fail(mock, "slow", "slow_first_token", delay_ms=3000)
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "slow", "messages": HELLO, "stream": True},
                   timeout=10)
    assert r.status_code == 504


def test_unreachable_upstream_is_a_clear_502(gw: str) -> None:
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "dead", "messages": HELLO})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["type"] == "upstream_error" and "cannot connect" in err["message"]


def test_stream_fails_over_before_its_first_byte(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "reset")
    chunks = list(oai(gw).chat.completions.create(model="flaky", messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert "Hello" in "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[0].model == "flaky-b"


def test_stream_cut_after_first_byte_ends_with_an_error_event(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "cut")
    with httpx.stream("POST", f"{gw}/v1/chat/completions",
                      json={"model": "flaky", "messages": HELLO, "stream": True}) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] != "data: [DONE]" and '"code":"stream_interrupted"' in events[-1]
    assert counts(mock) == {"flaky-a": 1}  # no failover once bytes reached the client
    with pytest.raises(openai.APIError):
        list(oai(gw).chat.completions.create(model="flaky", messages=HELLO, stream=True))  # type: ignore[arg-type]


def test_anthropic_stream_cut_ends_with_an_error_event(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "cut")
    with httpx.stream("POST", f"{gw}/v1/messages", json={"model": "flaky", "max_tokens": 50,
                                                          "messages": HELLO, "stream": True}) as r:
        text = r.read().decode()
    assert "event: error" in text and "message_stop" not in text


@pytest.fixture(scope="module")
def gw_breaker(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("breaker")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(api_config(upstream, tmp / "data", breaker_min=4))
    with gateway(cfg) as (url, _):
        yield url


def test_breaker_opens_then_recovers(gw_breaker: str, mock: httpx.Client) -> None:
    gw = gw_breaker
    fail(mock, "brk", "500")
    for _ in range(2):  # 2 requests x 2 attempts = 4 failures: the breaker opens
        assert httpx.post(f"{gw}/v1/chat/completions", json={"model": "breaker", "messages": HELLO}).status_code == 502
    assert counts(mock) == {"brk": 4}
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "breaker", "messages": HELLO})
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert counts(mock) == {"brk": 4}  # open: the upstream was not called
    fail(mock, "brk", None)  # type: ignore[arg-type]
    time.sleep(1.1)  # the configured cooldown
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "breaker", "messages": HELLO})
    assert r.status_code == 200  # the half-open probe succeeded and closed the breaker
    assert httpx.post(f"{gw}/v1/chat/completions", json={"model": "breaker", "messages": HELLO}).status_code == 200


def _active(mock: httpx.Client) -> int:
    return int(mock.get("/_mock/stats").json()["active"])


def _wait_idle(mock: httpx.Client) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _active(mock) == 0:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, httpx.Client]]:
    """A gateway in front of an upstream that streams 5 tokens a second, like a real model."""
    tmp = tmp_path_factory.mktemp("paced")
    up = MockUpstream("--tokens-per-second", "5")
    with httpx.Client(base_url=up.url) as control:
        cfg = tmp / "ostiary.yaml"
        cfg.write_text(api_config(up.url, tmp / "data"))
        try:
            with gateway(cfg) as (url, _):
                yield url, control
        finally:
            up.stop()


def test_client_disconnect_mid_stream_cancels_the_upstream_stream(paced: tuple[str, httpx.Client]) -> None:
    gw, control = paced
    words = " ".join(["word"] * 200)  # 40 s of tokens at 5 a second
    with httpx.stream("POST", f"{gw}/v1/chat/completions",
                      json={"model": "gpt", "messages": [{"role": "user", "content": words}], "stream": True}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        assert _active(control) == 1
    # The client closed its connection after the first chunk: the upstream stream must stop too.
    assert _wait_idle(control), "the gateway kept the upstream stream open after its client left"
    assert httpx.post(f"{gw}/v1/chat/completions", json={"model": "gpt", "messages": HELLO}).status_code == 200


def test_upstream_credential_errors_never_echo_the_key(gw: str, mock: httpx.Client) -> None:
    fail(mock, "gpt-up", "401")
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "gpt", "messages": HELLO})
    assert r.status_code == 502 and "credentials" in r.json()["error"]["message"]
    assert UPSTREAM_KEY not in r.text
    assert counts(mock) == {"gpt-up": 1}  # not retried: the same key would be refused again


def test_upstream_rejecting_the_request_is_a_client_error(gw: str, mock: httpx.Client) -> None:
    fail(mock, "flaky-a", "422")
    r = httpx.post(f"{gw}/v1/chat/completions", json={"model": "flaky", "messages": HELLO})
    assert r.status_code == 422 and r.json()["error"]["code"] == "upstream_rejected"
    assert counts(mock) == {"flaky-a": 1}  # no fallback: every deployment would refuse it
