"""Circuit breaker and deployment ordering."""

from __future__ import annotations

import collections

from ostiary.config.schema import Breaker as Settings
from ostiary.config.schema import Deployment
from ostiary.routing.health import Breaker, HealthBook
from ostiary.routing.strategies import latency, least_busy, priority, weighted


def test_breaker_opens_on_failure_ratio_and_recovers_through_a_probe() -> None:
    b = Breaker(Settings(failure_ratio=0.5, window=10, min_requests=4, cooldown=5))
    b.record(True, 0.0)
    b.record(True, 0.1)
    b.record(False, 0.2)
    assert b.state == "closed"  # 1/3: below min_requests and ratio
    b.record(False, 0.3)
    assert b.state == "open"  # 2/4 failures
    assert not b.allow(1.0)
    assert b.retry_in(1.0) == 4.3
    assert b.allow(5.4)  # cooldown over: one probe
    assert b.state == "half_open"
    assert not b.allow(5.5)  # only one probe at a time
    b.record(False, 5.6)
    assert b.state == "open"  # failed probe reopens
    assert b.allow(10.7)
    b.record(True, 10.8)
    assert b.state == "closed" and b.allow(10.9)


def test_breaker_window_forgets_old_failures() -> None:
    b = Breaker(Settings(failure_ratio=0.5, window=1, min_requests=2, cooldown=5))
    b.record(False, 0.0)
    b.record(True, 5.0)
    b.record(False, 5.1)
    assert b.state == "open"  # the 0.0 failure fell out; 1/2 at 5.1
    b2 = Breaker(Settings(failure_ratio=0.6, window=1, min_requests=2, cooldown=5))
    b2.record(False, 0.0)
    b2.record(True, 5.0)
    b2.record(False, 5.1)
    assert b2.state == "closed"  # 1/2 < 0.6


def _dep(model: str, **kw: object) -> Deployment:
    return Deployment(provider="mock", model=model, **kw)  # type: ignore[arg-type]


def test_priority_orders_by_priority_then_weight() -> None:
    book = HealthBook(Settings())
    deps = [_dep("c", priority=2), _dep("a", priority=0), _dep("b", priority=1)]
    assert [d.model for d in priority(deps, book.get)] == ["a", "b", "c"]


def test_weighted_shares_load_by_weight() -> None:
    book = HealthBook(Settings())
    deps = [_dep("heavy", weight=3), _dep("light", weight=1)]
    firsts = collections.Counter(weighted(deps, book.get)[0].model for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80  # expected 0.75


def test_latency_prefers_unmeasured_then_fastest() -> None:
    book = HealthBook(Settings())
    deps = [_dep("slow"), _dep("fast"), _dep("new")]
    book.get(deps[0].name).observe_latency(0.5)
    book.get(deps[1].name).observe_latency(0.05)
    assert [d.model for d in latency(deps, book.get)] == ["new", "fast", "slow"]


def test_ewma_moves_towards_new_samples() -> None:
    book = HealthBook(Settings())
    h = book.get("x")
    h.observe_latency(1.0)
    h.observe_latency(0.0)
    assert abs(h.ewma_latency - 0.8) < 1e-9  # type: ignore[operator]


def test_least_busy_prefers_fewest_in_flight() -> None:
    book = HealthBook(Settings())
    deps = [_dep("busy"), _dep("idle")]
    book.get(deps[0].name).in_flight = 5
    assert least_busy(deps, book.get)[0].model == "idle"
