"""The router in-process, with scripted providers: retries, fallbacks, breakers, streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ostiary.config.load import parse
from ostiary.errors import GatewayError, InvalidRequest, NotFound
from ostiary.pipeline.call import Call
from ostiary.providers.base import Target, UpstreamFailure
from ostiary.routing.health import HealthBook
from ostiary.routing.router import Router, StreamFailed


class Scripted:
    """Fails the way its script says, per upstream model, then answers."""

    def __init__(self) -> None:
        self.script: dict[str, list[UpstreamFailure]] = {}
        self.calls: list[str] = []
        self.cut_after: dict[str, int] = {}

    def _next(self, target: Target) -> None:
        model = target.deployment.model
        self.calls.append(model)
        queue = self.script.get(model)
        if queue:
            raise queue.pop(0)

    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        self._next(target)
        return {"model": target.deployment.model, "usage": {"prompt_tokens": 1, "completion_tokens": 2}}

    async def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        self._next(target)
        for i in range(5):
            if self.cut_after.get(target.deployment.model) == i:
                raise UpstreamFailure("cut", kind="stream_cut")
            yield [{"model": target.deployment.model, "choices": [{"index": 0, "delta": {"content": str(i)}}]}]
        yield [{"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 5}}]

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        self._next(target)
        return {"model": target.deployment.model, "data": []}

    async def aclose(self) -> None:
        pass


CONFIG = b"""
retry: {attempts: 3, backoff_base: 0.001, backoff_max: 0.002, retry_after_max: 0.05}
breaker: {failure_ratio: 0.5, window: 60, min_requests: 4, cooldown: 60}
routes:
  - name: main
    strategy: priority
    fallbacks: [backup]
    deployments:
      - {provider: mock, model: a, priority: 0}
      - {provider: mock, model: b, priority: 1}
  - name: backup
    deployments:
      - {provider: mock, model: c}
"""


def make() -> tuple[Router, Scripted]:
    loaded = parse(CONFIG, source="t")
    p = Scripted()
    return Router(loaded.config, HealthBook(loaded.config.breaker), {"mock": p}), p  # type: ignore[dict-item]


def call(model: str = "main", stream: bool = False) -> Call:
    return Call(id="r", api="openai.chat", body={"model": model, "messages": []}, model=model, stream=stream,
                config_version="v")


def fail(status: int = 500, **kw: Any) -> UpstreamFailure:
    return UpstreamFailure(f"upstream error {status}", status=status, **kw)


async def test_answers_from_the_first_deployment() -> None:
    router, _ = make()
    c = call()
    await router(c)
    assert c.result == {"model": "a", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    assert (c.route, c.deployment, c.usage["completion_tokens"]) == ("main", "mock:a@default", 2)  # type: ignore[index]
    assert [a.outcome for a in c.attempts] == ["ok"]


async def test_retries_then_succeeds_on_the_same_deployment() -> None:
    router, p = make()
    p.script["a"] = [fail(500), fail(503)]
    c = call()
    await router(c)
    assert p.calls == ["a", "a", "a"]
    assert [a.outcome for a in c.attempts] == ["retry", "retry", "ok"]
    assert c.attempts[0].status == 500


async def test_falls_back_to_next_deployment_then_other_route() -> None:
    router, p = make()
    p.script["a"] = [fail(500)] * 3
    p.script["b"] = [UpstreamFailure("timed out", kind="timeout")] * 3
    c = call()
    await router(c)
    assert p.calls == ["a"] * 3 + ["b"] * 3 + ["c"]
    assert (c.route, c.deployment) == ("backup", "mock:c@default")


async def test_non_retryable_failure_moves_on_at_once() -> None:
    router, p = make()
    p.script["a"] = [fail(401, retryable=False)]
    c = call()
    await router(c)
    assert p.calls == ["a", "b"]


async def test_client_fault_is_a_400_with_no_fallback() -> None:
    router, p = make()
    p.script["a"] = [fail(422, retryable=False, client_fault=True)]
    with pytest.raises(InvalidRequest) as e:
        await router(call())
    assert e.value.status == 422 and p.calls == ["a"]


async def test_retry_after_is_honoured_or_skipped_when_too_long() -> None:
    router, p = make()
    p.script["a"] = [fail(429, retry_after=0.01)]
    c = call()
    await router(c)
    assert p.calls == ["a", "a"]
    router, p = make()
    p.script["a"] = [fail(429, retry_after=30)]  # longer than retry_after_max: go elsewhere now
    c = call()
    await router(c)
    assert p.calls == ["a", "b"]


async def test_everything_rate_limited_is_a_429_with_retry_after() -> None:
    router, p = make()
    for m in "abc":
        p.script[m] = [fail(429, retry_after=7)] * 3
    with pytest.raises(GatewayError) as e:
        await router(call())
    assert e.value.status == 429 and e.value.headers["retry-after"] == "7"


async def test_all_timeouts_is_a_504_and_other_failures_a_502() -> None:
    router, p = make()
    for m in "abc":
        p.script[m] = [UpstreamFailure("timed out", kind="timeout")] * 3
    with pytest.raises(GatewayError) as e:
        await router(call())
    assert e.value.status == 504
    router, p = make()
    for m in "abc":
        p.script[m] = [fail(500)] * 3
    with pytest.raises(GatewayError) as e:
        await router(call())
    assert e.value.status == 502 and "upstream error 500" in e.value.message


async def test_breaker_opens_and_the_deployment_is_skipped() -> None:
    router, p = make()
    p.script["a"] = [fail(500)] * 4
    await router(call())  # a fails 3 times, b answers
    await router(call())  # a fails a 4th time: 4/4 failures in the window, the breaker opens
    p.calls.clear()
    c = call()
    await router(c)
    assert p.calls == ["b"]
    assert c.attempts[0].outcome == "skipped" and c.attempts[0].error == "circuit open"
    assert router.health.snapshot()["mock:a@default"]["breaker"] == "open"


async def test_all_circuits_open_is_a_503() -> None:
    router, _ = make()
    now = 0.0
    for name in ("mock:a@default", "mock:b@default", "mock:c@default"):
        router.health.get(name).breaker._open(now + 1e12)  # far in the future: stays open
    with pytest.raises(GatewayError) as e:
        await router(call())
    assert e.value.status == 503 and "retry-after" in e.value.headers


async def test_unknown_model_is_404() -> None:
    router, _ = make()
    with pytest.raises(NotFound):
        await router(call("nope"))


async def test_stream_fails_over_before_the_first_chunk() -> None:
    router, p = make()
    p.script["a"] = [fail(503)] * 3
    c = call(stream=True)
    await router(c)
    chunks = [x async for batch in c.result for x in batch]  # type: ignore[union-attr]
    assert "".join(ch["choices"][0]["delta"]["content"] for ch in chunks if ch["choices"]) == "01234"
    assert c.deployment == "mock:b@default" and c.usage == {"prompt_tokens": 1, "completion_tokens": 5}


async def test_stream_cut_after_first_chunk_is_an_error_not_a_failover() -> None:
    router, p = make()
    p.cut_after["a"] = 2
    c = call(stream=True)
    await router(c)
    got = []
    with pytest.raises(StreamFailed):
        async for batch in c.result:  # type: ignore[union-attr]
            got += [ch["choices"][0]["delta"]["content"] for ch in batch]
    assert got == ["0", "1"] and p.calls == ["a"]
    assert router.health.get("mock:a@default").in_flight == 0
