"""The limits stage: take one token from every rate bucket that applies to the call, or refuse it.

Answers carry the OpenAI-style `x-ratelimit-*-requests` headers of the tightest bucket; a refusal
is a 429 with `Retry-After`. If the shared counter store (Redis) cannot be reached the call is
refused with a 503: a limit that silently stops counting is not a limit.
"""

from __future__ import annotations

import logging
import math

from ostiary.config.schema import Limits
from ostiary.errors import GatewayError, RateLimited
from ostiary.limits.rate import Bucket, RateLimiter, Verdict
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler

log = logging.getLogger("ostiary.limits")


class RateLimit:
    name = "limits"

    def __init__(self, limits: Limits, limiter: RateLimiter) -> None:
        self.limits = limits
        self.limiter = limiter

    def buckets(self, call: Call) -> list[Bucket]:
        p, lim = call.principal, self.limits
        out = []
        if lim.key is not None:
            out.append(Bucket(f"key:{p.subject}", lim.key.rpm))
        if lim.user is not None and p.user:
            out.append(Bucket(f"user:{p.tenant}/{p.user}", lim.user.rpm))
        if lim.tenant is not None:
            out.append(Bucket(f"tenant:{p.tenant}", lim.tenant.rpm))
        if lim.route is not None:
            out.append(Bucket(f"route:{call.model}", lim.route.rpm))
        return out

    async def __call__(self, call: Call, next: Handler) -> None:
        buckets = self.buckets(call)
        if buckets:
            try:
                verdict = await self.limiter.take(buckets)
            except Exception:
                log.exception("rate limiter unavailable")
                raise GatewayError("The rate limiter cannot be reached; the request was not admitted.",
                                   status=503, type="api_error", code="limiter_unavailable") from None
            headers = _headers(verdict)
            if not verdict.allowed:
                wait = max(1, math.ceil(verdict.retry_after_ms / 1000))
                assert verdict.tightest is not None
                raise RateLimited(f"Rate limit of {verdict.tightest.capacity} requests per minute reached for "
                                  f"{verdict.tightest.key.split(':', 1)[0]} {verdict.tightest.key.split(':', 1)[1]!r}; "
                                  f"retry in {wait}s.", headers={"retry-after": str(wait), **headers})
            call.response_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        await next(call)


def _headers(v: Verdict) -> dict[str, str]:
    if v.tightest is None:
        return {}
    b = v.tightest
    reset_ms = max(0, math.ceil((b.capacity - v.remaining) / b.per_ms))
    return {"x-ratelimit-limit-requests": str(b.capacity), "x-ratelimit-remaining-requests": str(v.remaining),
            "x-ratelimit-reset-requests": f"{reset_ms}ms"}
