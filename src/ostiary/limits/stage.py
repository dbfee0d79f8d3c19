"""The limits stage: take one token from every rate bucket that applies to the call, or refuse it.

Answers carry the OpenAI-style `x-ratelimit-*-requests` headers of the tightest bucket; a refusal
is a 429 with `Retry-After`. If the shared counter store (Redis) cannot be reached the call is
refused with a 503: a limit that silently stops counting is not a limit.
"""

from __future__ import annotations

import hashlib
import logging
import math

import orjson

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
            out.append(Bucket.per_minute(f"key:{p.subject}", lim.key.rpm))
        if lim.user is not None and p.user:
            out.append(Bucket.per_minute(f"user:{p.tenant}/{p.user}", lim.user.rpm))
        if lim.tenant is not None:
            out.append(Bucket.per_minute(f"tenant:{p.tenant}", lim.tenant.rpm))
        if lim.route is not None:
            out.append(Bucket.per_minute(f"route:{call.model}", lim.route.rpm))
        if lim.loop is not None:
            # The same principal, the same route, the same input: a client stuck in a retry or agent loop.
            prompt = call.body.get("messages", call.body.get("input"))
            digest = hashlib.sha256(orjson.dumps([call.model, prompt], option=orjson.OPT_SORT_KEYS)).hexdigest()
            out.append(Bucket.per_window(f"loop:{p.tenant}/{p.subject}:{digest[:32]}", lim.loop.max_repeats,
                                         lim.loop.window_seconds))
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
                if verdict.tightest.key.startswith("loop:"):
                    raise RateLimited(f"The same request was sent more than {verdict.tightest.capacity} times in "
                                      f"{self.limits.loop.window_seconds:g}s; this looks like a runaway loop in "  # type: ignore[union-attr]
                                      "the client. Change the request or wait.", code="runaway_loop_detected",
                                      headers={"retry-after": str(wait)})
                raise RateLimited(f"Rate limit of {verdict.tightest.capacity} requests per minute reached for "
                                  f"{verdict.tightest.key.split(':', 1)[0]} {verdict.tightest.key.split(':', 1)[1]!r}; "
                                  f"retry in {wait}s.", headers={"retry-after": str(wait), **headers})
            call.response_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        await next(call)


def _headers(v: Verdict) -> dict[str, str]:
    if v.tightest is None or v.tightest.key.startswith("loop:"):
        return {}
    b = v.tightest
    reset_ms = max(0, math.ceil((b.capacity - v.remaining) / b.per_ms))
    return {"x-ratelimit-limit-requests": str(b.capacity), "x-ratelimit-remaining-requests": str(v.remaining),
            "x-ratelimit-reset-requests": f"{reset_ms}ms"}
