"""The limits stage: hold a concurrency slot and take a rate token for every scope that applies
(key, user, tenant, route), or refuse the call. Slots are released when the answer (or the stream)
ends.

Answers carry the OpenAI-style `x-ratelimit-*-requests` headers of the tightest bucket; a refusal
is a 429 with `Retry-After`. If the shared counter store (Redis) cannot be reached the call is
refused with a 503: a limit that silently stops counting is not a limit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import orjson

from ostiary.config.schema import Limits, Quota
from ostiary.errors import GatewayError, RateLimited
from ostiary.limits.rate import Bucket, RateLimiter, Slot, Verdict
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler

log = logging.getLogger("ostiary.limits")
T = TypeVar("T")


class RateLimit:
    name = "limits"

    def __init__(self, limits: Limits, limiter: RateLimiter, lease_seconds: float = 660.0) -> None:
        self.limits = limits
        self.limiter = limiter
        # The lease bounds how long a slot can be held: a replica that dies frees its slots after it.
        self.lease_ms = int(lease_seconds * 1000)

    def _scopes(self, call: Call) -> list[tuple[str, Quota]]:
        p, lim = call.principal, self.limits
        out = []
        if lim.key is not None:
            out.append((f"key:{p.subject}", lim.key))
        if lim.user is not None and p.user:
            out.append((f"user:{p.tenant}/{p.user}", lim.user))
        if lim.tenant is not None:
            out.append((f"tenant:{p.tenant}", lim.tenant))
        if lim.route is not None:
            out.append((f"route:{call.model}", lim.route))
        return out

    def buckets(self, call: Call) -> list[Bucket]:
        out = [Bucket.per_minute(key, q.rpm) for key, q in self._scopes(call) if q.rpm is not None]
        loop = self.limits.loop
        if loop is not None:
            # The same principal, the same route, the same input: a client stuck in a retry or agent loop.
            prompt = call.body.get("messages", call.body.get("input"))
            digest = hashlib.sha256(orjson.dumps([call.model, prompt], option=orjson.OPT_SORT_KEYS)).hexdigest()
            out.append(Bucket.per_window(f"loop:{call.principal.tenant}/{call.principal.subject}:{digest[:32]}",
                                         loop.max_repeats, loop.window_seconds))
        return out

    def slots(self, call: Call) -> list[Slot]:
        return [Slot(f"inflight:{key}", q.concurrent) for key, q in self._scopes(call) if q.concurrent is not None]

    async def __call__(self, call: Call, next: Handler) -> None:
        buckets, slots = self.buckets(call), self.slots(call)
        if not buckets and not slots:
            await next(call)
            return
        holder = f"{call.id}:{os.urandom(6).hex()}"  # request ids come from clients: make it unique
        verdict = await self._guard(self.limiter.admit(buckets, slots, holder, self.lease_ms))
        if verdict.full is not None:
            kind, _, name = verdict.full.key.removeprefix("inflight:").partition(":")
            raise RateLimited(f"{verdict.full.limit} requests are already in flight for {kind} {name!r}; retry "
                              "when one of them has finished.", code="concurrency_limit_exceeded",
                              headers={"retry-after": "1"})
        self._admit(call, buckets, verdict)  # raises on a refused rate; then nothing was held
        try:
            await next(call)
        except BaseException:
            if slots:
                self._release(slots, holder)
            raise
        if slots:
            if call.stream and call.result is not None and not isinstance(call.result, dict):
                call.result = self._release_after(call.result, slots, holder)
            else:
                self._release(slots, holder)

    def _admit(self, call: Call, buckets: list[Bucket], verdict: Verdict) -> None:
        if not verdict.allowed:
            wait = max(1, math.ceil(verdict.retry_after_ms / 1000))
            b = verdict.tightest
            assert b is not None
            if b.key.startswith("loop:"):
                raise RateLimited(f"The same request was sent more than {b.capacity} times in "
                                  f"{self.limits.loop.window_seconds:g}s; this looks like a runaway loop in "  # type: ignore[union-attr]
                                  "the client. Change the request or wait.", code="runaway_loop_detected",
                                  headers={"retry-after": str(wait)})
            kind, _, name = b.key.partition(":")
            raise RateLimited(f"Rate limit of {b.capacity} requests per minute reached for {kind} {name!r}; "
                              f"retry in {wait}s.", headers={"retry-after": str(wait), **_headers(b, 0)})
        # The headers describe the tightest *rate* bucket; a loop bucket is not a rate clients plan by.
        rates = [(left, b) for b, left in zip(buckets, verdict.levels, strict=False) if not b.key.startswith("loop:")]
        if rates:
            left, b = min(rates, key=lambda r: r[0])
            call.response_headers += [(k.encode(), v.encode()) for k, v in _headers(b, left).items()]

    async def _guard(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except Exception:
            log.exception("rate limiter unavailable")
            raise GatewayError("The rate limiter cannot be reached; the request was not admitted.",
                               status=503, type="api_error", code="limiter_unavailable") from None

    def _release(self, slots: list[Slot], holder: str) -> None:
        # Off the answer's path: the client need not wait for the slot to be given back.
        try:
            self.limiter.release(slots, holder)
        except Exception:  # the lease expiry frees it later; the answer must not fail for this
            log.exception("could not release concurrency slots; they expire with their lease")

    async def _release_after(self, batches: AsyncIterator[list[dict[str, Any]]], slots: list[Slot],
                             holder: str) -> AsyncIterator[list[dict[str, Any]]]:
        try:
            async for batch in batches:
                yield batch
        finally:
            self._release(slots, holder)


def _headers(b: Bucket, remaining: int) -> dict[str, str]:
    reset_ms = max(0, math.ceil((b.capacity - remaining) / b.per_ms))
    return {"x-ratelimit-limit-requests": str(b.capacity), "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{reset_ms}ms"}
