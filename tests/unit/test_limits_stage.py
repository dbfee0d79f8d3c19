"""The limits stage in-process: which buckets apply, refusals, headers, runaway-loop detection,
token reservations settled with the real usage, budgets, and streams cut at the budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ostiary.config.schema import Config, Limits, Loop, Quota
from ostiary.errors import GatewayError, RateLimited
from ostiary.identity.principal import ANONYMOUS, Principal
from ostiary.limits.alerts import BudgetAlerts
from ostiary.limits.book import Book, Rules
from ostiary.limits.meter import UsageMeter
from ostiary.limits.rate import MemoryRateLimiter, RateLimiter
from ostiary.limits.settings import BudgetRule
from ostiary.limits.stage import LimitsStage
from ostiary.pipeline.call import Call
from ostiary.providers.http import HttpPool
from ostiary.store import Store

ALICE = Principal(kind="key", subject="ost-alice", tenant="acme", user="alice", role="developer",
                  scopes=frozenset({"chat"}), models=None, clearance="internal")


def call(principal: Principal = ALICE, text: str = "Hello", model: str = "m") -> Call:
    c = Call(id="r", api="openai.chat", body={"model": model, "messages": [{"role": "user", "content": text}]},
             model=model, stream=False, config_version="v")
    c.principal = principal
    return c


async def _next(c: Call) -> None:
    c.result = {"ok": True}


def RateLimit(limits: Limits, limiter: RateLimiter, **config: Any) -> LimitsStage:
    """A stage on a one-route config ("m", mock model m, priced at 1 USD / 2 USD per million)."""
    cfg = Config.model_validate({"routes": [{"name": "m", "deployments": [{"provider": "mock", "model": "m"}]}],
                                 "pricing": {"m": {"input": 1.0, "output": 2.0}}, **config})
    cfg = cfg.model_copy(update={"limits": limits})
    store = Store("sqlite://")
    return LimitsStage(cfg, {r.name: [r] for r in cfg.routes}, limiter, Book(store), UsageMeter(store),
                       BudgetAlerts(cfg.budgets, HttpPool()))


async def test_buckets_for_every_configured_scope() -> None:
    stage = RateLimit(Limits(key=Quota(rpm=10), user=Quota(rpm=20), tenant=Quota(rpm=30), route=Quota(rpm=40)),
                      MemoryRateLimiter())
    t = stage.plan(call())
    assert t is not None and [b.key for b in t.buckets] == ["key:ost-alice", "user:acme/alice", "tenant:acme", "route:m"]
    t = stage.plan(call(ANONYMOUS))
    assert t is not None and [b.key for b in t.buckets] == ["anonymous:anonymous", "tenant:default", "route:m"]


async def test_refusal_is_a_429_with_headers_and_admission_sets_them() -> None:
    stage = RateLimit(Limits(tenant=Quota(rpm=2)), MemoryRateLimiter())
    first = call()
    await stage(first, _next)
    assert dict(first.response_headers)[b"x-ratelimit-remaining-requests"] == b"1"
    await stage(call(), _next)
    with pytest.raises(RateLimited) as e:
        await stage(call(), _next)
    assert e.value.headers["retry-after"] == "30" and "'tenant:acme'" in e.value.message


async def test_runaway_loop_is_refused_with_its_own_code() -> None:
    stage = RateLimit(Limits(loop=Loop(max_repeats=3, window_seconds=60)), MemoryRateLimiter())
    for _ in range(3):
        await stage(call(text="same"), _next)
    with pytest.raises(RateLimited) as e:
        await stage(call(text="same"), _next)
    assert e.value.code == "runaway_loop_detected" and "runaway loop" in e.value.message
    await stage(call(text="different"), _next)  # another prompt is fine
    await stage(call(ANONYMOUS, text="same"), _next)  # and so is another principal


async def test_a_broken_counter_store_refuses_with_503() -> None:
    class Down:
        async def admit(self, *args: Any) -> Any:
            raise ConnectionError("redis is down")

        async def aclose(self) -> None:
            pass

    with pytest.raises(GatewayError) as e:
        await RateLimit(Limits(route=Quota(rpm=5)), Down())(call(), _next)
    assert e.value.status == 503 and e.value.code == "limiter_unavailable"


async def test_concurrency_slots_are_held_until_the_answer_and_the_stream_end() -> None:
    limiter = MemoryRateLimiter()
    stage = RateLimit(Limits(key=Quota(concurrent=1)), limiter)
    inside: list[int] = []

    async def slow(c: Call) -> None:
        with pytest.raises(RateLimited) as e:  # a second request while the first is in flight
            await stage(call(), _next)
        assert e.value.code == "concurrency_limit_exceeded"
        inside.append(1)

    await stage(call(), slow)
    assert inside == [1]
    await asyncio.sleep(0)  # the slot is given back just after the answer
    await stage(call(), _next)
    await asyncio.sleep(0)

    async def stream(c: Call) -> None:
        async def batches() -> Any:
            yield [{"choices": []}]

        c.result = batches()

    s = call()
    s.stream = True
    await stage(s, stream)
    with pytest.raises(RateLimited):  # the stream has not been read yet: the slot is still held
        await stage(call(), _next)
    assert [b async for b in s.result] == [[{"choices": []}]]  # type: ignore[union-attr]
    await asyncio.sleep(0)
    await stage(call(), _next)  # read to the end: released


async def test_a_failing_call_releases_its_slot() -> None:
    stage = RateLimit(Limits(tenant=Quota(concurrent=1)), MemoryRateLimiter())

    async def boom(c: Call) -> None:
        raise GatewayError("upstream down", status=502)

    with pytest.raises(GatewayError):
        await stage(call(), boom)
    await asyncio.sleep(0)
    await stage(call(), _next)


async def test_headers_describe_the_rate_not_the_loop_bucket() -> None:
    stage = RateLimit(Limits(key=Quota(rpm=600), loop=Loop(max_repeats=3)), MemoryRateLimiter())
    c = call()
    await stage(c, _next)
    headers = dict(c.response_headers)
    assert headers[b"x-ratelimit-limit-requests"] == b"600"
    assert headers[b"x-ratelimit-remaining-requests"] == b"599"


def _answer(prompt_tokens: int, completion_tokens: int) -> Any:
    async def handler(c: Call) -> None:
        c.result = {"ok": True}
        c.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        c.deployment = "d"

    return handler


async def test_token_reservation_is_settled_with_the_real_usage() -> None:
    limiter = MemoryRateLimiter()
    stage = RateLimit(Limits(key=Quota(tpm=1000), output_reserve=500), limiter)
    c = call(text="Hello")
    t = stage.plan(c)
    assert t is not None and t.input_est > 0 and t.output_est == 500
    assert t.buckets[0].key == "tpm:key:ost-alice" and t.buckets[0].cost == t.input_est + 500
    await stage(c, _answer(10, 20))
    headers = dict(c.response_headers)
    assert headers[b"x-ratelimit-limit-tokens"] == b"1000"
    assert int(headers[b"x-ratelimit-remaining-tokens"]) == 1000 - t.input_est - 500  # before settling
    # Settled: 30 tokens used, not the ~510 reserved; a second call sees (almost) the whole bucket.
    c2 = call(text="Hello")
    c2.body["max_tokens"] = 5
    await stage(c2, _answer(10, 5))
    assert int(dict(c2.response_headers)[b"x-ratelimit-remaining-tokens"]) >= 1000 - 30 - t.input_est - 5


async def test_token_limit_refuses_and_a_prompt_above_the_limit_is_told_so() -> None:
    stage = RateLimit(Limits(tenant=Quota(input_tpm=50)), MemoryRateLimiter())
    with pytest.raises(RateLimited) as e:
        await stage(call(text="word " * 200), _answer(200, 1))
    assert e.value.code == "tokens_exceed_limit" and "shorten" in e.value.message
    await stage(call(text="hi"), _answer(45, 1))  # settles 45 of the 50
    with pytest.raises(RateLimited) as e:
        await stage(call(text="hello there friend"), _answer(10, 1))
    assert "input tokens per minute" in e.value.message and e.value.headers["retry-after"]


def _with_budget(stage: LimitsStage, scope: str, amount: float, thresholds: tuple[int, ...] = ()) -> None:
    stage.book.rules = Rules({scope: BudgetRule(amount_usd=amount, period="month", thresholds=thresholds)}, {}, {}, 1)


async def test_budget_reserves_the_estimate_refuses_when_spent_and_reports_thresholds() -> None:
    stage = RateLimit(Limits(output_reserve=100), MemoryRateLimiter())
    # 1 USD / 2 USD per million: a call of 1,000,000 input tokens costs 1 USD.
    _with_budget(stage, "tenant:acme", 2.5, (50, 100))
    crossed: list[tuple[str, int]] = []
    stage.alerts.crossed = lambda scope, period, pct, limit, spent: crossed.append((scope, pct))  # type: ignore[method-assign]
    exhausted: list[str] = []
    stage.alerts.exhausted = lambda scope, period, limit, spent: exhausted.append(scope)  # type: ignore[method-assign]
    await stage(call(), _answer(1_000_000, 0))  # 1 USD
    assert crossed == []  # 1.0 < 1.25: not yet
    await stage(call(), _answer(1_000_000, 0))  # 2 USD: crosses 50 %
    assert crossed == [("tenant:acme", 50)]
    await stage(call(), _answer(250_000, 0))  # 2.25 USD
    await stage(call(), _answer(250_000, 0))  # admitted (2.25 + a small estimate), settles at 2.5
    with pytest.raises(GatewayError) as e:
        await stage(call(), _answer(1, 0))
    assert e.value.status == 429 and e.value.code == "budget_exceeded" and "'tenant:acme'" in e.value.message
    assert crossed == [("tenant:acme", 50), ("tenant:acme", 100)]
    for _ in range(3):
        with pytest.raises(GatewayError):
            await stage(call(), _answer(1, 0))
    assert exhausted == ["tenant:acme"]  # the first refusal is announced, the next ones are not
    assert stage.meter._rows  # usage was metered


async def test_a_failed_call_gives_its_reservation_back() -> None:
    stage = RateLimit(Limits(output_reserve=1_000_000), MemoryRateLimiter())
    _with_budget(stage, "key:ost-alice", 2.1)  # each call reserves 2 USD of output

    async def boom(c: Call) -> None:
        raise GatewayError("upstream down", status=502)

    for _ in range(3):
        with pytest.raises(GatewayError) as e:
            await stage(call(), boom)
        assert e.value.status == 502  # never budget_exceeded: nothing was spent
    await stage(call(), _answer(1, 1))


async def test_a_stream_is_cut_with_an_error_when_it_would_overrun_the_budget() -> None:
    stage = RateLimit(Limits(output_reserve=10), MemoryRateLimiter(), budgets={"stream_step": 10})
    # Output at 2 USD per million tokens: 0.0001 USD allows 50 output tokens (after the input).
    _with_budget(stage, "tenant:acme", 0.0001)

    async def stream(c: Call) -> None:
        async def batches() -> Any:
            for _ in range(20):
                yield [{"choices": [{"index": 0, "delta": {"content": "word " * 5}}]}]

        c.result = batches()

    s = call()
    s.stream = True
    await stage(s, stream)
    got: list[Any] = []
    with pytest.raises(GatewayError) as e:
        async for batch in s.result:  # type: ignore[union-attr]
            got.append(batch)
    assert e.value.code == "budget_exceeded" and "cut off" in e.value.message
    assert 3 <= len(got) < 10  # ~5 tokens a batch: cut near 50 tokens, never all 20 batches
    with pytest.raises(GatewayError):  # and the budget is spent now
        await stage(call(), _answer(1, 1))


async def test_a_route_release_reserves_at_the_price_of_the_route_that_answers() -> None:
    cfg = Config.model_validate({"routes": [{"name": "m", "deployments": [{"provider": "mock", "model": "m"}]},
                                            {"name": "m-next", "deployments": [{"provider": "mock", "model": "m-next"}]}],
                                 "pricing": {"m": {"input": 1.0, "output": 2.0}, "m-next": {"input": 10.0, "output": 20.0}},
                                 "limits": {"route": {"rpm": 10}}})
    store = Store("sqlite://")
    stage = LimitsStage(cfg, {r.name: [r] for r in cfg.routes}, MemoryRateLimiter(), Book(store), UsageMeter(store),
                        BudgetAlerts(cfg.budgets, HttpPool()))
    _with_budget(stage, "tenant:acme", 100.0)
    plain = stage.plan(call())
    moved = call()
    moved.decisions["pointers"] = {"route:m": "m-next"}  # a release's candidate arm
    released = stage.plan(moved)
    assert plain is not None and released is not None
    assert released.caps[0].cost == pytest.approx(10 * plain.caps[0].cost)
    assert [b.key for b in released.buckets] == ["route:m"]  # limits stay the asked route's
