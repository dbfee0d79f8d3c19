"""Request limits and spending caps, exact on one node (in memory) and across replicas (Redis).

Rates are token buckets: a bucket holds up to `capacity` and refills continuously (rpm/60 per
second for requests, tpm/60 for tokens). A request takes its cost from every bucket that applies
(its key, user, tenant, route): 1 for a request bucket, the estimated tokens for a token bucket; all
or nothing. Afterwards `finish` settles the difference between the estimate and the real count, so a
bucket may go below zero and then admits nothing until it has refilled. Over any interval T a bucket
admits at most capacity + rate*T, plus what the requests in flight at the end under-estimated.

Caps are budgets: a counter of money spent in one period (its key names the period) that admits a
request while spent + reservation <= limit. The reservation is settled with the real cost by `finish`.

Concurrency limits are slots: a request holds one slot of every scope that applies until it ends.
In Redis a slot is a lease (a sorted-set member with an expiry), so the slots of a replica that
dies are freed when its leases run out instead of leaking.

With Redis, admission is one Lua script and so is finishing, atomic and on the Redis clock, so
replicas with skewed clocks share one exact count.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("ostiary.limits")


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # e.g. "key:ost-abc", "tpm:tenant:acme", "route:gpt-4o", "loop:ost-abc:<prompt hash>"
    capacity: int  # the burst
    per_ms: float  # the refill, per millisecond
    cost: int = 1  # what one admission takes

    @classmethod
    def per_minute(cls, key: str, per_minute: int, cost: int = 1) -> Bucket:
        return cls(key, per_minute, per_minute / 60_000.0, cost)

    @classmethod
    def per_window(cls, key: str, count: int, seconds: float) -> Bucket:
        return cls(key, count, count / (seconds * 1000.0))

    def costing(self, cost: int) -> Bucket:
        return Bucket(self.key, self.capacity, self.per_ms, cost)  # dataclasses.replace is 10x slower


@dataclass(frozen=True, slots=True)
class Slot:
    key: str  # e.g. "inflight:key:ost-abc"
    limit: int


@dataclass(frozen=True, slots=True)
class Cap:
    """A budget for one period: admits while spent + cost <= limit."""

    key: str  # e.g. "budget:tenant:acme:2026-11"
    limit: float  # USD
    cost: float  # this request's reservation, USD
    base: float  # spend already in the database for the period: the counter's start if it has none
    ttl_ms: int  # until the period is over (0: never, a budget for all time)
    thresholds: tuple[int, ...] = ()  # percentages of the limit reported once each per period

    def costing(self, cost: float) -> Cap:
        return Cap(self.key, self.limit, cost, self.base, self.ttl_ms, self.thresholds)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int  # when refused by a rate: until the scarcest bucket has room again
    tightest: Bucket | None  # the bucket with the least room left (for x-ratelimit-* headers)
    remaining: int  # what is left in it
    full: Slot | None = None  # when refused for concurrency: the slot with no room
    levels: tuple[int, ...] = ()  # when admitted: what is left in every bucket, in order
    broke: Cap | None = None  # when refused by a budget: that budget
    spent: float = 0.0  # ... and what is spent or reserved in it


@dataclass(frozen=True, slots=True)
class Settled:
    """One cap after finishing: its settled spend (reservations in flight excluded), the thresholds
    this request was the first to see crossed, and whether it was the first refused this period."""

    cap: Cap
    spent: float
    crossed: tuple[int, ...]
    exhausted: bool = False


class RateLimiter(Protocol):
    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int,
                    caps: list[Cap] | None = None) -> Verdict:
        """Hold one slot of each, take each bucket's cost and reserve each cap's cost, all or nothing."""

    async def take(self, buckets: list[Bucket]) -> Verdict: ...

    async def acquire(self, slots: list[Slot], holder: str, ttl_ms: int) -> Slot | None:
        """Hold one slot of each, all or nothing; None on success, else the full one."""

    def finish(self, slots: list[Slot], holder: str, buckets: list[tuple[Bucket, float]],
               caps: list[tuple[Cap, float]], then: Callable[[list[Settled]], None] | None = None,
               refused: bool = False) -> None:
        """Give the slots back and add each delta (used minus reserved) to its bucket and cap.
        Returns at once; `then` gets the caps' new spend when it is known. Nobody waits for it: a
        failure is logged; leases and bucket refills bound what it costs, and a cap's reservation
        stays counted until its period ends. Thresholds compare the settled spend, never what
        requests in flight reserved. `refused`: a cap turned this request away (delta 0); the first
        such refusal of a period is reported as `exhausted`, once across replicas."""

    async def aclose(self) -> None: ...


class _Shortcuts:
    """`take` and `acquire` in terms of `admit`, for both limiters."""

    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int,
                    caps: list[Cap] | None = None) -> Verdict:
        raise NotImplementedError

    async def take(self, buckets: list[Bucket]) -> Verdict:
        return await self.admit(buckets, [], "", 0)

    async def acquire(self, slots: list[Slot], holder: str, ttl_ms: int) -> Slot | None:
        return (await self.admit([], slots, holder, ttl_ms)).full


class MemoryRateLimiter(_Shortcuts):
    """One node: exact, no I/O. State: bucket key -> (level, last refill in ms); cap key -> spend."""

    SWEEP_EVERY = 10_000  # takes between two sweeps of refilled buckets (prompt-hash buckets come and go)

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._full_at: dict[str, float] = {}
        self._held: dict[str, int] = {}
        # cap key -> [spent and reserved, settled spend, wall-clock expiry (0: none)]
        self._caps: dict[str, list[float]] = {}
        self._alerted: set[tuple[str, str]] = set()  # (cap key, "<pct>@<limit>" or "exhausted@<limit>")
        self._takes = 0

    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int,
                    caps: list[Cap] | None = None) -> Verdict:
        full = next((s for s in slots if self._held.get(s.key, 0) >= s.limit), None)
        if full is not None:
            return Verdict(False, 1000, None, 0, full=full)
        now = time.monotonic() * 1000.0
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self._sweep(now)
        levels = [self._level(b, now) for b in buckets]
        wait = _wait(buckets, levels)
        if wait == 0 and caps:
            spends = [self._spend(c) for c in caps]
            # A spent budget refuses even a request it cannot price (cost 0).
            broke = next((i for i, c in enumerate(caps) if spends[i] + c.cost > c.limit or spends[i] >= c.limit),
                         None)
            if broke is not None:
                return Verdict(False, 0, None, 0, broke=caps[broke], spent=spends[broke])
        taken = wait == 0
        for b, level in zip(buckets, levels, strict=True):
            self._store(b, level - b.cost if taken else level, now)
        if not taken:
            i = max(range(len(buckets)), key=lambda j: (buckets[j].cost - levels[j]) / buckets[j].per_ms)
            return Verdict(False, math.ceil(wait), buckets[i], 0)
        for c in caps or ():
            self._caps[c.key][0] += c.cost
        for s in slots:
            self._held[s.key] = self._held.get(s.key, 0) + 1
        return _admitted(buckets, [level - b.cost for b, level in zip(buckets, levels, strict=True)])

    def finish(self, slots: list[Slot], holder: str, buckets: list[tuple[Bucket, float]],
               caps: list[tuple[Cap, float]], then: Callable[[list[Settled]], None] | None = None,
               refused: bool = False) -> None:
        for s in slots:
            left = self._held.get(s.key, 0) - 1
            if left > 0:
                self._held[s.key] = left
            else:
                self._held.pop(s.key, None)
        now = time.monotonic() * 1000.0
        for b, delta in buckets:
            if delta:
                self._store(b, min(float(b.capacity), self._level(b, now) - delta), now)
        out = []
        for c, delta in caps:
            entry = self._caps.get(c.key)
            if entry is None:  # the period is over and its counter gone
                continue
            entry[0] += delta
            entry[1] += 0.0 if refused else c.cost + delta  # what the request spent: its reservation, settled
            crossed = []
            for pct in c.thresholds:
                mark = (c.key, f"{pct}@{c.limit!r}")
                if entry[1] >= c.limit * pct / 100 and mark not in self._alerted:
                    self._alerted.add(mark)
                    crossed.append(pct)
            exhausted = refused and (c.key, f"exhausted@{c.limit!r}") not in self._alerted
            if exhausted:
                self._alerted.add((c.key, f"exhausted@{c.limit!r}"))
            out.append(Settled(c, entry[1], tuple(crossed), exhausted))
        if then is not None and out:
            then(out)

    def _level(self, b: Bucket, now: float) -> float:
        level, ts = self._state.get(b.key, (float(b.capacity), now))
        return min(float(b.capacity), level + (now - ts) * b.per_ms)

    def _store(self, b: Bucket, level: float, now: float) -> None:
        self._state[b.key] = (level, now)
        self._full_at[b.key] = now + (b.capacity - level) / b.per_ms

    def _spend(self, c: Cap) -> float:
        entry = self._caps.get(c.key)
        if entry is None:
            entry = self._caps[c.key] = [c.base, c.base, time.time() + c.ttl_ms / 1000 if c.ttl_ms else 0.0]
        return entry[0]

    def _sweep(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket; a cap whose period is over is gone.
        for k in [k for k, at in self._full_at.items() if at <= now]:
            del self._full_at[k]
            self._state.pop(k, None)
        wall = time.time()
        for k in [k for k, (_, _, exp) in self._caps.items() if exp and exp <= wall]:
            del self._caps[k]
            self._alerted = {a for a in self._alerted if a[0] != k}

    async def aclose(self) -> None:
        return None


def _wait(buckets: list[Bucket], levels: list[float]) -> float:
    """Milliseconds until every bucket has room for its cost (0: now)."""
    return max(((b.cost - t) / b.per_ms for b, t in zip(buckets, levels, strict=True) if t < b.cost), default=0.0)


def _admitted(buckets: list[Bucket], left: list[float]) -> Verdict:
    if not buckets:
        return Verdict(True, 0, None, 0)
    levels = tuple(int(x) if x > 0 else 0 for x in left)
    i, least = 0, left[0] / buckets[0].capacity
    for j in range(1, len(buckets)):
        if left[j] / buckets[j].capacity < least:
            i, least = j, left[j] / buckets[j].capacity
    return Verdict(True, 0, buckets[i], levels[i], levels=levels)


_FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ns = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local nc = tonumber(ARGV[4])
local refused = ARGV[5] == '1'
for i = 1, ns do redis.call('ZREM', KEYS[i], ARGV[1]) end
local a = 6
for j = 1, nb do
  local key = KEYS[ns + j]
  local cap = tonumber(ARGV[a]); local rate = tonumber(ARGV[a + 1]); local delta = tonumber(ARGV[a + 2])
  a = a + 3
  local v = redis.call('HMGET', key, 't', 'ts')
  local level = tonumber(v[1]); local ts = tonumber(v[2])
  if level == nil then level = cap; ts = now end
  level = math.min(cap, math.min(cap, level + math.max(0, now - ts) * rate) - delta)
  redis.call('HSET', key, 't', tostring(level), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((cap - level) / rate) + 1000)
end
local out = {}
for k = 1, nc do
  local key = KEYS[ns + nb + k]
  local delta = ARGV[a]; local used = ARGV[a + 1]; local limit = ARGV[a + 2]; local n = tonumber(ARGV[a + 3])
  local res = {}
  if redis.call('EXISTS', key) == 1 then
    redis.call('INCRBYFLOAT', key, delta)
    local spent = tonumber(redis.call('INCRBYFLOAT', key .. ':spent', used))
    res[1] = tostring(spent)
    res[2] = 0
    local ttl = redis.call('PTTL', key)
    if refused and redis.call('HSETNX', key .. ':alerts', 'exhausted@' .. limit, 1) == 1 then res[2] = 1 end
    for i = 1, n do
      local pct = tonumber(ARGV[a + 3 + i])
      if spent >= tonumber(limit) * pct / 100 and redis.call('HSETNX', key .. ':alerts', pct .. '@' .. limit, 1) == 1 then
        res[#res + 1] = pct
      end
    end
    if ttl > 0 then redis.call('PEXPIRE', key .. ':alerts', ttl); redis.call('PEXPIRE', key .. ':spent', ttl) end
  end
  a = a + 4 + n
  out[k] = res
end
return out
"""
# Admit one request: every slot must have room, every bucket its cost and every cap room for its
# reservation, or nothing is taken. KEYS: the slots, the buckets, the caps. ARGV: holder, lease ms,
# slot/bucket/cap counts, each slot's limit, each bucket's capacity, refill per ms and cost, each
# cap's limit, cost, base and ttl ms. Returns {status, a, b, c, levels...}: status 1 admitted (then
# what is left in each bucket, as strings), 0 refused by a bucket (a: wait ms, c: the index of the
# bucket that needs longest), 2 a slot is full
# (a: its index), 3 a cap is spent (a: its index, b: the spend as a string: Lua numbers would be
# truncated to integers in the reply).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
local ns = tonumber(ARGV[3]); local nb = tonumber(ARGV[4]); local nc = tonumber(ARGV[5])
local a = 6
for i = 1, ns do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[a]) then return {2, i - 1, 0, 0} end
  a = a + 1
end
local levels = {}
local wait = 0
local waiter = 1
local bargs = a
for j = 1, nb do
  local cap = tonumber(ARGV[a]); local rate = tonumber(ARGV[a + 1]); local cost = tonumber(ARGV[a + 2])
  a = a + 3
  local v = redis.call('HMGET', KEYS[ns + j], 't', 'ts')
  local level = tonumber(v[1]); local ts = tonumber(v[2])
  if level == nil then level = cap; ts = now end
  level = math.min(cap, level + math.max(0, now - ts) * rate)
  levels[j] = level
  if level < cost then
    local w = (cost - level) / rate
    if w > wait then wait = w; waiter = j end
  end
end
if wait == 0 then
  for k = 1, nc do
    local key = KEYS[ns + nb + k]
    local limit = tonumber(ARGV[a]); local cost = tonumber(ARGV[a + 1])
    local spent = tonumber(redis.call('GET', key))
    if spent == nil then
      spent = tonumber(ARGV[a + 2])
      local pttl = tonumber(ARGV[a + 3])
      if pttl > 0 then
        redis.call('SET', key, ARGV[a + 2], 'PX', pttl); redis.call('SET', key .. ':spent', ARGV[a + 2], 'PX', pttl)
      else
        redis.call('SET', key, ARGV[a + 2]); redis.call('SET', key .. ':spent', ARGV[a + 2])
      end
    end
    if spent + cost > limit or spent >= limit then return {3, k - 1, tostring(spent), 0} end
    a = a + 4
  end
end
local taken = 0
if wait == 0 then taken = 1 end
a = bargs
for j = 1, nb do
  local cap = tonumber(ARGV[a]); local rate = tonumber(ARGV[a + 1]); local cost = tonumber(ARGV[a + 2])
  a = a + 3
  local key = KEYS[ns + j]
  levels[j] = levels[j] - cost * taken
  redis.call('HSET', key, 't', tostring(levels[j]), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((cap - levels[j]) / rate) + 1000)
end
if taken == 0 then return {0, math.ceil(wait), 0, waiter - 1} end
for k = 1, nc do
  redis.call('INCRBYFLOAT', KEYS[ns + nb + k], ARGV[a + 1])
  a = a + 4
end
for i = 1, ns do
  redis.call('ZADD', KEYS[i], now + ttl, holder)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
local out = {1, 0, 0, 0}
for j = 1, nb do out[4 + j] = tostring(levels[j]) end
return out
"""


class RedisRateLimiter(_Shortcuts):
    """Buckets, caps and slots in Redis. The calls of all requests that arrive in one event-loop turn
    go out in one pipeline (one round trip, one connection checkout); each script still runs
    atomically on its own, so batching changes the cost, not the counting."""

    def __init__(self, url: str, prefix: str = "ostiary:rl:", timeout: float = 2.0) -> None:
        import redis.asyncio as redis

        # A stalled Redis must turn into a 503, not a hang.
        self.redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = prefix
        self._admit = _Script(_ADMIT)
        self._finish = _Script(_FINISH)
        self._pending: list[tuple[_Script, list[str], list[Any], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def admit(self, buckets: list[Bucket], slots: list[Slot], holder: str, ttl_ms: int,
                    caps: list[Cap] | None = None) -> Verdict:
        caps = caps or []
        args: list[Any] = [holder, ttl_ms, len(slots), len(buckets), len(caps), *(s.limit for s in slots)]
        for b in buckets:
            args += [b.capacity, repr(b.per_ms), b.cost]
        for c in caps:
            args += [repr(c.limit), repr(c.cost), repr(c.base), c.ttl_ms]
        keys = [s.key for s in slots] + [b.key for b in buckets] + [c.key for c in caps]
        pending = self._enqueue(self._admit, keys, args)
        try:
            # Shielded: the script runs whether or not this request is still waiting for it.
            status, a, b_, tightest, *levels = await asyncio.shield(pending)
        except asyncio.CancelledError:
            # The client went away while its admission was in flight: give back what it took.
            pending.add_done_callback(lambda f: self._undo(f, slots, holder, buckets, caps))
            raise
        if status == 2:
            return Verdict(False, 1000, None, 0, full=slots[int(a)])
        if status == 3:
            return Verdict(False, 0, None, 0, broke=caps[int(a)], spent=float(b_))
        if status == 0:
            return Verdict(False, int(a), buckets[int(tightest)], 0)
        return _admitted(buckets, [float(x) for x in levels])

    def finish(self, slots: list[Slot], holder: str, buckets: list[tuple[Bucket, float]],
               caps: list[tuple[Cap, float]], then: Callable[[list[Settled]], None] | None = None,
               refused: bool = False) -> None:
        """Goes out with the next batch."""
        args: list[Any] = [holder, len(slots), len(buckets), len(caps), "1" if refused else "0"]
        for b, delta in buckets:
            args += [b.capacity, repr(b.per_ms), repr(float(delta))]
        for c, delta in caps:
            used = 0.0 if refused else c.cost + delta  # what the request spent: its reservation, settled
            args += [repr(float(delta)), repr(used), repr(c.limit), len(c.thresholds), *c.thresholds]
        keys = [s.key for s in slots] + [b.key for b, _ in buckets] + [c.key for c, _ in caps]

        def done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                log.warning("could not finish a request's limits (%s); leases expire, buckets refill",
                            None if fut.cancelled() else fut.exception())
            elif then is not None and caps:
                then([Settled(c, float(r[0]), tuple(int(x) for x in r[2:]), bool(r[1]))
                      for (c, _), r in zip(caps, fut.result(), strict=True) if r])

        self._enqueue(self._finish, keys, args).add_done_callback(done)

    def _undo(self, fut: asyncio.Future[Any], slots: list[Slot], holder: str, buckets: list[Bucket],
              caps: list[Cap]) -> None:
        if not fut.cancelled() and fut.exception() is None and fut.result()[0] == 1:
            self.finish(slots, holder, [(b, -float(b.cost)) for b in buckets], [(c, -c.cost) for c in caps])

    def _enqueue(self, script: _Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
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
            results = await self._execute(batch)
            missing = [i for i, r in enumerate(results) if _no_script(r)]
            if missing:  # a Redis restarted or flushed its scripts: load them, run those again
                for script in {id(batch[i][0]): batch[i][0] for i in missing}.values():
                    await self.redis.script_load(script.source)
                for i, r in zip(missing, await self._execute([batch[i] for i in missing]), strict=True):
                    results[i] = r
        except Exception as e:  # noqa: BLE001 - Redis unreachable: every waiting request gets it (-> 503)
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        # Each script succeeds or fails on its own: one error does not fail the others' admissions.
        for (*_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _execute(self, batch: list[tuple[_Script, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        # EVALSHA directly: redis-py's Script objects add a SCRIPT EXISTS round trip to every pipeline.
        pipe = self.redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def aclose(self) -> None:
        await self.redis.aclose()





class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by their SHA-1


def _no_script(result: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(result, NoScriptError)
