"""Request limits, exact on one node (in memory) and across replicas (Redis).

Rates are token buckets: a bucket holds up to `rpm` tokens and refills at rpm/60 per second; a
request takes one token from every bucket that applies to it (its key, user, tenant, route), all
or nothing. Over any interval T a bucket admits at most rpm + rpm*T/60 requests, which is what the
multi-replica test checks.

Concurrency limits are slots: a request holds one slot of every scope that applies until it ends.
In Redis a slot is a lease (a sorted-set member with an expiry), so the slots of a replica that
dies are freed when its leases run out instead of leaking.

With Redis, each check is one Lua script, atomic and on the Redis clock, so replicas with skewed
clocks share one exact count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("ostiary.limits")


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # e.g. "key:ost-abc", "tenant:acme", "route:gpt-4o", "loop:ost-abc:<prompt hash>"
    capacity: int  # the burst
    per_ms: float  # the refill, tokens per millisecond

    @classmethod
    def per_minute(cls, key: str, rpm: int) -> Bucket:
        return cls(key, rpm, rpm / 60_000.0)

    @classmethod
    def per_window(cls, key: str, count: int, seconds: float) -> Bucket:
        return cls(key, count, count / (seconds * 1000.0))


@dataclass(frozen=True, slots=True)
class Slot:
    key: str  # e.g. "key:ost-abc"
    limit: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int  # when refused: until the scarcest bucket has a token again
    tightest: Bucket | None  # the bucket with the fewest tokens left (for x-ratelimit-* headers)
    remaining: int  # tokens left in it
    full: Slot | None = None  # when refused for concurrency: the slot with no room
    levels: tuple[int, ...] = ()  # when admitted: tokens left in every bucket, in order


class RateLimiter(Protocol):
    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int) -> Verdict:
        """Hold one slot of each and take one token of each bucket, all or nothing, in one step."""

    async def take(self, buckets: list[Bucket]) -> Verdict: ...

    async def acquire(self, slots: list[Slot], holder: str, ttl_ms: int) -> Slot | None:
        """Hold one slot of each, all or nothing; None on success, else the full one."""

    def release(self, slots: list[Slot], holder: str) -> None:
        """Give the slots back; returns at once."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """One node: exact, no I/O. State: bucket key -> (tokens, last refill in ms)."""

    SWEEP_EVERY = 10_000  # takes between two sweeps of refilled buckets (prompt-hash buckets come and go)

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._full_at: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._takes = 0

    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int) -> Verdict:
        full = next((s for s in slots if self._held.get(s.key, 0) >= s.limit), None)
        if full is not None:
            return Verdict(False, 1000, None, 0, full=full)
        verdict = await self.take(buckets) if buckets else Verdict(True, 0, None, 0)
        if verdict.allowed:
            for s in slots:
                self._held[s.key] = self._held.get(s.key, 0) + 1
        return verdict

    async def acquire(self, slots: list[Slot], holder: str, ttl_ms: int) -> Slot | None:
        return (await self.admit([], slots, holder, ttl_ms)).full

    def release(self, slots: list[Slot], holder: str) -> None:
        for s in slots:
            left = self._held.get(s.key, 0) - 1
            if left > 0:
                self._held[s.key] = left
            else:
                self._held.pop(s.key, None)

    def _sweep(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forget it.
        for k in [k for k, at in self._full_at.items() if at <= now]:
            del self._full_at[k]
            self._state.pop(k, None)

    async def take(self, buckets: list[Bucket]) -> Verdict:
        now = time.monotonic() * 1000.0
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self._sweep(now)
        levels = []
        for b in buckets:
            tokens, ts = self._state.get(b.key, (float(b.capacity), now))
            levels.append(min(b.capacity, tokens + (now - ts) * b.per_ms))
        return self._decide(buckets, levels, now)

    def _decide(self, buckets: list[Bucket], levels: list[float], now: float) -> Verdict:
        wait = max(((1.0 - t) / b.per_ms for b, t in zip(buckets, levels, strict=True) if t < 1.0), default=0.0)
        taken = 0.0 if wait > 0 else 1.0
        for b, t in zip(buckets, levels, strict=True):
            self._state[b.key] = (t - taken, now)
            self._full_at[b.key] = now + (b.capacity - (t - taken)) / b.per_ms
        if wait > 0:
            i = min(range(len(buckets)), key=lambda j: levels[j])
            return Verdict(False, math.ceil(wait), buckets[i], 0)
        i = min(range(len(buckets)), key=lambda j: levels[j] - 1.0)
        return Verdict(True, 0, buckets[i], int(levels[i] - 1.0), levels=tuple(int(t - 1.0) for t in levels))

    async def aclose(self) -> None:
        return None


_RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0
"""

# Admit one request: every slot must have room and every bucket a token, or nothing is taken.
# KEYS: the slots, then the buckets. ARGV: holder, lease ms, slot count, each slot's limit, then
# each bucket's capacity and refill per ms. Returns {status, wait ms or full slot index, tightest
# bucket index, tokens left in it}; status 1 admitted, 0 refused by a bucket, 2 a slot is full.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
local ns = tonumber(ARGV[3])
for i = 1, ns do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + i]) then return {2, i - 1, 0, 0} end
end
local nb = #KEYS - ns
local base = 3 + ns
local levels = {}
local wait = 0
for j = 1, nb do
  local cap = tonumber(ARGV[base + 2 * j - 1])
  local rate = tonumber(ARGV[base + 2 * j])
  local v = redis.call('HMGET', KEYS[ns + j], 't', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil then tokens = cap; ts = now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  levels[j] = tokens
  if tokens < 1 then
    local w = (1 - tokens) / rate
    if w > wait then wait = w end
  end
end
local allowed = 1
if wait > 0 then allowed = 0 end
local tightest = 1
for j = 1, nb do
  if allowed == 1 then levels[j] = levels[j] - 1 end
  local cap = tonumber(ARGV[base + 2 * j - 1])
  local rate = tonumber(ARGV[base + 2 * j])
  redis.call('HSET', KEYS[ns + j], 't', tostring(levels[j]), 'ts', now)
  redis.call('PEXPIRE', KEYS[ns + j], math.ceil(cap / rate) + 1000)
  if levels[j] < levels[tightest] then tightest = j end
end
if allowed == 0 then return {0, math.ceil(wait), tightest - 1, 0} end
for i = 1, ns do
  redis.call('ZADD', KEYS[i], now + ttl, holder)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
local out = {1, 0, tightest - 1, 0}
for j = 1, nb do out[4 + j] = math.floor(math.max(0, levels[j])) end
if nb > 0 then out[4] = out[4 + tightest] end
return out
"""


class RedisRateLimiter:
    """Buckets and slots in Redis. The calls of all requests that arrive in one event-loop turn go
    out in one pipeline (one round trip, one connection checkout); each script still runs atomically
    on its own, so batching changes the cost, not the counting."""

    def __init__(self, url: str, prefix: str = "ostiary:rl:") -> None:
        import redis.asyncio as redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._admit = self.redis.register_script(_ADMIT)
        self._release = self.redis.register_script(_RELEASE)
        self._pending: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int) -> Verdict:
        args: list[Any] = [holder, ttl_ms, len(slots), *(s.limit for s in slots)]
        for b in buckets:
            args += [b.capacity, b.per_ms]
        keys = [s.key for s in slots] + [b.key for b in buckets]
        status, wait, tightest, remaining, *levels = await self._run(self._admit, keys, args)
        if status == 2:
            return Verdict(False, 1000, None, 0, full=slots[int(wait)])
        return Verdict(bool(status), int(wait), buckets[int(tightest)] if buckets else None, int(remaining),
                       levels=tuple(int(x) for x in levels))

    async def take(self, buckets: list[Bucket]) -> Verdict:
        return await self.admit(buckets, [], "", 0)

    async def acquire(self, slots: list[Slot], holder: str, ttl_ms: int) -> Slot | None:
        return (await self.admit([], slots, holder, ttl_ms)).full

    def release(self, slots: list[Slot], holder: str) -> None:
        """Give slots back with the next batch; nobody waits for it (a failure leaves the lease to
        expire, which is logged)."""
        fut = self._enqueue(self._release, [s.key for s in slots], [holder])
        fut.add_done_callback(_log_failed_release)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return await self._enqueue(script, keys, args)

    def _enqueue(self, script: Any, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, [self.prefix + k for k in keys], args, fut))
        if len(self._pending) == 1:
            # The first call of this turn schedules the flush; later ones in the turn ride along.
            task = loop.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other requests of this turn join the batch
        batch, self._pending = self._pending, []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                await script(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        except Exception as e:  # noqa: BLE001 - every waiting request gets the failure (-> 503)
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (*_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def aclose(self) -> None:
        await self.redis.aclose()


def _log_failed_release(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("could not release concurrency slots (%s); they expire with their lease", fut.exception())

