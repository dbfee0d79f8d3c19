"""The in-memory token buckets: burst, refill, all-or-nothing."""

from __future__ import annotations

import pytest

from ostiary.limits import rate
from ostiary.limits.rate import Bucket, MemoryRateLimiter


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(rate.time, "monotonic", lambda: now[0])
    return now


async def test_burst_then_refill(clock: list[float]) -> None:
    lim = MemoryRateLimiter()
    b = [Bucket.per_minute("route:m", 60)]  # 60 per minute: one a second
    verdicts = [await lim.take(b) for _ in range(61)]
    assert sum(v.allowed for v in verdicts) == 60
    assert verdicts[59].remaining == 0 and not verdicts[60].allowed and verdicts[60].retry_after_ms == 1000
    clock[0] += 2.5  # 2.5 tokens come back
    assert [(await lim.take(b)).allowed for _ in range(3)] == [True, True, False]


async def test_all_or_nothing_across_buckets(clock: list[float]) -> None:
    lim = MemoryRateLimiter()
    tight, loose = Bucket.per_minute("key:k", 2), Bucket.per_minute("tenant:t", 100)
    assert [(await lim.take([tight, loose])).allowed for _ in range(3)] == [True, True, False]
    v = await lim.take([loose])
    assert v.allowed and v.remaining == 97  # the refused request took nothing from the loose bucket
    assert (await lim.take([tight, loose])).tightest == tight


async def test_refilled_buckets_are_forgotten(clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    lim = MemoryRateLimiter()
    monkeypatch.setattr(MemoryRateLimiter, "SWEEP_EVERY", 10)
    for i in range(9):  # nine one-off prompts, as loop-detection buckets are
        await lim.take([Bucket.per_window(f"loop:{i}", 5, 60)])
    assert len(lim._state) == 9
    clock[0] += 61  # all refilled
    await lim.take([Bucket.per_minute("route:m", 60)])  # the 10th take sweeps
    assert set(lim._state) == {"route:m"}
