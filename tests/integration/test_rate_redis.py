"""Redis token buckets shared by several limiter instances (as by several replicas)."""

from __future__ import annotations

import asyncio
import secrets
import time

from ostiary.limits.rate import Bucket, RedisRateLimiter, Slot

REDIS = "redis://127.0.0.1:6379/0"


async def test_three_replicas_admit_exactly_the_limit() -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    replicas = [RedisRateLimiter(REDIS, prefix=prefix) for _ in range(3)]
    bucket = [Bucket.per_minute("route:shared", 600)]  # burst 600, then 10 a second
    admitted = 0
    t0 = time.monotonic()

    async def hammer(lim: RedisRateLimiter) -> None:
        nonlocal admitted
        while time.monotonic() - t0 < 1.5:
            verdicts = await asyncio.gather(*(lim.take(bucket) for _ in range(20)))
            admitted += sum(v.allowed for v in verdicts)

    await asyncio.gather(*(hammer(r) for r in replicas))
    elapsed = time.monotonic() - t0
    expected = 600 + 10 * elapsed
    assert abs(admitted - expected) <= 0.01 * expected, (admitted, expected)
    for r in replicas:
        await r.aclose()


async def test_a_refusal_says_when_to_retry_and_charges_nothing() -> None:
    lim = RedisRateLimiter(REDIS, prefix=f"test:{secrets.token_hex(4)}:")
    tight, loose = Bucket.per_minute("key:k", 2), Bucket.per_minute("tenant:t", 100)
    assert [(await lim.take([tight, loose])).allowed for _ in range(3)] == [True, True, False]
    refused = await lim.take([tight, loose])
    assert not refused.allowed and 0 < refused.retry_after_ms <= 30_000 and refused.tightest == tight
    v = await lim.take([loose])
    assert v.allowed and v.remaining == 97
    await lim.aclose()


async def test_concurrency_slots_across_replicas_and_lease_expiry() -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    a, b = RedisRateLimiter(REDIS, prefix=prefix), RedisRateLimiter(REDIS, prefix=prefix)
    slot = [Slot("inflight:key:k", 2)]
    assert await a.acquire(slot, "r1", 60_000) is None
    assert await b.acquire(slot, "r2", 60_000) is None
    assert await a.acquire(slot, "r3", 60_000) == slot[0]  # full, whichever replica asks
    b.finish(slot, "r2", [], [])
    await asyncio.sleep(0.05)  # released with b's next batch
    assert await a.acquire(slot, "r3", 60_000) is None
    # A replica that dies without releasing: its lease runs out.
    lease = [Slot("inflight:key:crash", 1)]
    assert await a.acquire(lease, "lost", 200) is None
    assert await b.acquire(lease, "next", 200) == lease[0]
    await asyncio.sleep(0.3)
    assert await b.acquire(lease, "next", 200) is None
    await a.aclose()
    await b.aclose()


async def test_a_cancelled_admission_gives_back_what_it_took() -> None:
    from ostiary.limits.rate import Cap

    prefix = f"test:{secrets.token_hex(4)}:"
    lim = RedisRateLimiter(REDIS, prefix=prefix)
    slot, cap = Slot("inflight:key:k", 1), Cap("budget:key:k:2026-11", 10.0, 2.5, 0.0, 60_000)
    task = asyncio.ensure_future(lim.admit([Bucket.per_minute("key:k", 10)], [slot], "gone", 60_000, [cap]))
    await asyncio.sleep(0)  # the admission is on its way to Redis
    task.cancel()  # the client went away (the server cancels the request)
    try:
        await task
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.2)
    assert float(await lim.redis.get(prefix + cap.key)) == 0.0  # the reservation came back
    assert await lim.redis.zcard(prefix + slot.key) == 0  # and the slot
    assert (await lim.admit([], [slot], "next", 60_000)).allowed
    await lim.aclose()
