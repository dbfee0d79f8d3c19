"""The router: the innermost handler of the pipeline, which turns a call into an upstream answer.

For each route in the chain (the route asked for, then its fallbacks) it orders the deployments by
the route's strategy, skips those whose circuit is open, and tries each with retries (exponential
backoff with full jitter, or the upstream's Retry-After). A stream may fail over only until its
first chunk is ready; after that, a failure ends the stream with an error event. Every attempt is
recorded on the call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ostiary.config.schema import Config, Deployment, Retry, Route
from ostiary.errors import GatewayError, InvalidRequest, NotFound, RateLimited, UpstreamError
from ostiary.pipeline.call import Attempt, Call, close_stream
from ostiary.providers.base import Provider, Target, UpstreamFailure
from ostiary.routing.health import HealthBook
from ostiary.routing.strategies import STRATEGIES

log = logging.getLogger("ostiary.routing")
T = TypeVar("T")
Op = Callable[[Provider, Target], Awaitable[T]]


class StreamFailed(GatewayError):
    """A stream failed after its first chunk reached the client: it ends with an error event."""

    status = 502
    type = "upstream_error"
    code = "stream_interrupted"


class Router:
    def __init__(self, config: Config, health: HealthBook, providers: dict[str, Provider]) -> None:
        self.config = config
        self.health = health
        self.providers = providers
        self.routes = {r.name: r for r in config.routes}
        # Per route: it and its fallbacks (transitively), in the order they are tried.
        self.chains = {r.name: self._chain(r) for r in config.routes}
        # Targets are immutable per config: built once here, not per call.
        self._targets = {d.name: Target(d, d.timeouts or config.timeouts)
                         for r in config.routes for d in r.deployments}

    def _chain(self, route: Route) -> list[Route]:
        chain, seen, queue = [], set(), [route]
        while queue:
            r = queue.pop(0)
            if r.name in seen:
                continue
            seen.add(r.name)
            chain.append(r)
            queue.extend(self.routes[f] for f in r.fallbacks)
        return chain

    def longest(self) -> float:
        """Seconds the slowest call may take: every attempt on every deployment of the longest
        chain timing out, with the longest backoff between attempts."""
        def worst(chain: list[Route]) -> float:
            total = 0.0
            for r in chain:
                retry = r.retry or self.config.retry
                for d in r.deployments:
                    timeout = (d.timeouts or self.config.timeouts).total
                    total += retry.attempts * timeout + (retry.attempts - 1) * max(retry.backoff_max,
                                                                                   retry.retry_after_max)
            return total
        return max((worst(c) for c in self.chains.values()), default=self.config.timeouts.total)

    async def __call__(self, call: Call) -> None:
        if call.model not in self.routes:
            raise NotFound(f"The model {call.model!r} does not exist on this gateway; "
                           "GET /v1/models lists the available ones.", param="model", code="model_not_found")
        if call.kind == "embeddings":
            result = await self._execute(call, lambda p, t: p.embeddings(call.body, t))
        elif call.stream:
            call.result = await self._execute(call, lambda p, t: self._open_stream(call, p, t))
            return
        else:
            result = await self._execute(call, lambda p, t: p.chat(call.body, t))
        call.usage = result.get("usage")
        call.upstream_model = result.get("model")
        call.result = result

    async def _execute(self, call: Call, op: Op[T]) -> T:
        failures: list[UpstreamFailure] = []
        open_waits: list[float] = []
        for route in self._chain_for(call):
            retry = route.retry or self.config.retry
            deps = route.deployments
            order = list(deps) if len(deps) == 1 else STRATEGIES[route.strategy](deps, self.health.get)
            for dep in order:
                h = self.health.get(dep.name)
                now = time.monotonic()
                if not h.breaker.allow(now):
                    open_waits.append(h.breaker.retry_in(now))
                    call.attempts.append(Attempt(route.name, dep.name, time.time(), outcome="skipped",
                                                 error="circuit open"))
                    continue
                result = await self._try_deployment(call, route, dep, retry, op, failures)
                if result is not _FAILED:
                    return result  # type: ignore[return-value]
        raise _final_error(call, failures, open_waits)

    def _chain_for(self, call: Call) -> list[Route]:
        """The chain serving the call's route: another route's, when a release points it there (and
        that route is still in the config)."""
        return self.chains.get(call.served_route) or self.chains[call.model]

    async def _try_deployment(self, call: Call, route: Route, dep: Deployment, retry: Retry, op: Op[T],
                              failures: list[UpstreamFailure]) -> T | object:
        h = self.health.get(dep.name)
        provider = self.providers[dep.provider]
        target = self._targets[dep.name]
        for n in range(retry.attempts):
            attempt = Attempt(route.name, dep.name, time.time())
            call.attempts.append(attempt)
            t0 = time.perf_counter()
            h.in_flight += 1
            recorded = False
            try:
                result = await op(provider, target)
            except UpstreamFailure as f:
                attempt.duration = time.perf_counter() - t0
                attempt.status, attempt.error = f.status, f.message
                if f.client_fault:
                    # The upstream judged the request itself invalid; no other deployment will differ.
                    attempt.outcome = "failed"
                    h.breaker.record(True, time.monotonic())
                    recorded = True
                    raise InvalidRequest(f.message, status=f.status if f.status in (400, 413, 422) else 400,
                                         code="upstream_rejected") from None
                h.breaker.record(False, time.monotonic())
                recorded = True
                failures.append(f)
                if not f.retryable or n + 1 >= retry.attempts or h.breaker.state == "open":
                    attempt.outcome = "next"
                    break
                delay = random.uniform(0, min(retry.backoff_max, retry.backoff_base * 2**n))
                if f.retry_after is not None:
                    if f.retry_after > retry.retry_after_max:
                        attempt.outcome = "next"  # too long to wait here: another deployment may answer
                        break
                    delay = f.retry_after
                attempt.outcome = "retry"
                await asyncio.sleep(delay)
                continue
            finally:
                h.in_flight -= 1
                if not recorded and h.breaker.state == "half_open":
                    h.breaker.probing = False  # cancelled probe: let the next call probe
            elapsed = time.perf_counter() - t0
            attempt.duration = elapsed
            h.breaker.record(True, time.monotonic())
            h.observe_latency(elapsed)
            call.route, call.deployment = route.name, dep.name
            return result
        return _FAILED

    async def _open_stream(self, call: Call, provider: Provider,
                           target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        it = provider.stream(call.body, target).__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            raise UpstreamFailure("upstream stream ended before any chunk", kind="stream_cut") from None
        except BaseException:
            await _aclose(it)
            raise
        return _Relayed(self._relay(call, target.deployment.name, first, it), it)

    async def _relay(self, call: Call, dep_name: str, first: list[dict[str, Any]],
                     it: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the stream's batches of chunks, noting usage and model; past the first batch a
        failure can no longer fail over: it ends the stream with `StreamFailed`."""
        h = self.health.get(dep_name)
        h.in_flight += 1
        try:
            batch: list[dict[str, Any]] | None = first
            while batch is not None:
                for chunk in batch:
                    if chunk.get("usage"):
                        call.usage = chunk["usage"]
                    if call.upstream_model is None and chunk.get("model"):
                        call.upstream_model = chunk["model"]
                yield batch
                try:
                    batch = await it.__anext__()
                except StopAsyncIteration:
                    batch = None
                except UpstreamFailure as f:
                    h.breaker.record(False, time.monotonic())
                    if call.attempts:
                        call.attempts[-1].error = f"after first chunk: {f.message}"
                    raise StreamFailed(f"the upstream stream failed: {f.message}") from None
        finally:
            h.in_flight -= 1
            await _aclose(it)


_FAILED = object()


class _Relayed:
    """The relay generator, plus the upstream it reads: closing an async generator that never
    started skips its `finally`, so a stream closed before its first read closes the upstream here."""

    def __init__(self, relay: AsyncIterator[list[dict[str, Any]]], upstream: AsyncIterator[Any]) -> None:
        self.relay, self.upstream = relay, upstream

    def __aiter__(self) -> _Relayed:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        return await self.relay.__anext__()

    async def aclose(self) -> None:
        try:
            await _aclose(self.relay)
        finally:
            await _aclose(self.upstream)


async def _aclose(it: AsyncIterator[Any]) -> None:
    try:
        await close_stream(it)
    except Exception:  # closing a broken upstream stream must not mask the real outcome
        log.debug("error while closing an upstream stream", exc_info=True)


def _final_error(call: Call, failures: list[UpstreamFailure], open_waits: list[float]) -> GatewayError:
    if not failures:
        wait = max(1, math.ceil(min(open_waits))) if open_waits else 1
        return UpstreamError(f"No deployment of {call.model!r} is available right now (circuit open); "
                             f"retry in {wait}s.", status=503, code="upstream_unavailable",
                             headers={"retry-after": str(wait)})
    last = failures[-1]
    if all(f.status == 429 for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        wait = max(1, math.ceil(min(waits))) if waits else 1
        return RateLimited(f"Every deployment of {call.model!r} is rate limited upstream; retry in {wait}s.",
                           code="upstream_rate_limited", headers={"retry-after": str(wait)})
    n = len(failures)
    if last.kind == "timeout":
        return UpstreamError(f"The upstream for {call.model!r} timed out ({n} attempt(s)).", status=504,
                             code="upstream_timeout")
    return UpstreamError(f"The upstream for {call.model!r} failed after {n} attempt(s); last error: "
                         f"{last.message}", status=502)
