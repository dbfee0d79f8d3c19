"""The telemetry stage's metrics: what is counted, under which labels, at a request's end (success,
GatewayError, streams), guardrail verdicts, retries and fallbacks, and the scrape-time gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ostiary.config.schema import Config
from ostiary.errors import GatewayError, RateLimited
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Attempt, Call, close_stream
from ostiary.telemetry import Telemetry, TelemetryStage
from ostiary.telemetry.metrics import Metrics

ACME = Principal(kind="key", subject="ost-a", tenant="acme", user="alice", role="developer",
                 scopes=frozenset({"chat"}), models=None, clearance="internal")
CONFIG = Config.model_validate({"routes": [
    {"name": "m", "fallbacks": ["fb"], "deployments": [{"provider": "mock", "model": "m", "id": "dep-m"}]},
    {"name": "fb", "deployments": [{"provider": "mock", "model": "fb", "id": "dep-fb"}]},
]})
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def make_call(model: str = "m", stream: bool = False) -> Call:
    return Call(id="r1", api="openai.chat", body={"model": model, "messages": [{"role": "user", "content": "Hi"}]},
                model=model, stream=stream, config_version="v1")


def stage() -> tuple[TelemetryStage, Metrics]:
    m = Metrics()
    return TelemetryStage(m, None, CONFIG, "v1"), m


def value(m: Metrics, name: str, **labels: str) -> float:
    m.state.take()
    return m.registry.get_sample_value(name, labels) or 0.0


def answered(route: str = "m", deployment: str = "dep-m", cost: float = 0.002) -> Callable[[Call], Awaitable[None]]:
    async def handler(call: Call) -> None:
        call.principal = ACME
        call.route, call.deployment, call.upstream_model = route, deployment, route
        call.attempts.append(Attempt(route=route, deployment=deployment, started=0.0))
        call.usage = dict(USAGE)
        call.decisions["cost_usd"] = cost
        call.result = {"choices": []}
    return handler


async def test_success_counts_request_duration_tokens_and_cost() -> None:
    s, m = stage()
    for _ in range(2):
        await s(make_call(), answered())
    labels = {"route": "m", "tenant": "acme"}
    assert value(m, "ostiary_requests_total", deployment="dep-m", status="200", **labels) == 2
    assert value(m, "ostiary_request_duration_seconds_count", status_class="2xx", **labels) == 2
    assert value(m, "ostiary_tokens_total", direction="in", **labels) == 22
    assert value(m, "ostiary_tokens_total", direction="out", **labels) == 14
    assert value(m, "ostiary_cost_usd_total", **labels) == pytest.approx(0.004)
    assert value(m, "ostiary_upstream_attempts_total", route="m", deployment="dep-m", outcome="ok") == 2
    assert value(m, "ostiary_fallbacks_total", route="m", fallback="fb") == 0
    # Not a stream: no time to first byte.
    assert value(m, "ostiary_time_to_first_byte_seconds_count", **labels) == 0


async def test_gateway_error_counts_with_its_status() -> None:
    s, m = stage()

    async def refuse(call: Call) -> None:
        call.principal = ACME
        raise RateLimited("slow down")

    with pytest.raises(GatewayError) as e:
        await s(make_call(), refuse)
    assert value(m, "ostiary_requests_total", route="m", deployment="", status="429", tenant="acme") == 1
    assert value(m, "ostiary_request_duration_seconds_count", route="m", status_class="4xx", tenant="acme") == 1
    # The error answer carries the traceparent too (it does not carry call.response_headers).
    assert e.value.headers["traceparent"].startswith("00-")


async def test_unknown_model_and_no_principal_are_empty_labels() -> None:
    s, m = stage()

    async def unknown(call: Call) -> None:
        raise GatewayError("no such model", status=404, code="model_not_found")

    with pytest.raises(GatewayError):
        await s(make_call("made-up-by-a-client"), unknown)
    assert value(m, "ostiary_requests_total", route="", deployment="", status="404", tenant="") == 1
    assert b"made-up-by-a-client" not in m.exposition()


async def test_internal_error_counts_500() -> None:
    s, m = stage()

    async def broken(call: Call) -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await s(make_call(), broken)
    assert value(m, "ostiary_requests_total", route="m", deployment="", status="500", tenant="") == 1


async def test_guardrail_verdicts_by_scanner_action_policy() -> None:
    s, m = stage()

    async def guarded(call: Call) -> None:
        await answered()(call)
        call.decisions["guardrails"] = [
            {"scanner": "pii", "policy": "strict", "version": "abc", "action": "redact", "entities": ["EMAIL"]},
            {"scanner": "pii", "policy": "strict", "version": "abc", "action": "redact", "entities": ["PHONE"]},
            {"scanner": "injection", "policy": "strict", "version": "abc", "action": "flag", "entities": []},
        ]

    await s(make_call(), guarded)
    assert value(m, "ostiary_guardrail_verdicts_total", scanner="pii", action="redact", policy="strict") == 2
    assert value(m, "ostiary_guardrail_verdicts_total", scanner="injection", action="flag", policy="strict") == 1


async def test_retries_and_fallbacks_from_attempts() -> None:
    s, m = stage()

    async def fell_back(call: Call) -> None:
        call.attempts += [Attempt("m", "dep-m", 0.0, outcome="retry"), Attempt("m", "dep-m", 0.0, outcome="failed")]
        await answered(route="fb", deployment="dep-fb")(call)

    await s(make_call(), fell_back)
    assert value(m, "ostiary_retries_total", route="m", deployment="dep-m") == 1
    assert value(m, "ostiary_upstream_attempts_total", route="m", deployment="dep-m", outcome="failed") == 1
    assert value(m, "ostiary_upstream_attempts_total", route="fb", deployment="dep-fb", outcome="ok") == 1
    assert value(m, "ostiary_fallbacks_total", route="m", fallback="fb") == 1
    # Counted under the route asked for, with the deployment that answered.
    assert value(m, "ostiary_requests_total", route="m", deployment="dep-fb", status="200", tenant="acme") == 1


class Upstream:
    """A stream of batches; may fail after some of them."""

    def __init__(self, n: int, error: GatewayError | None = None) -> None:
        self.n = n
        self.error = error
        self.closed = False

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        if self.n == 0:
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        self.n -= 1
        return [{"choices": [{"delta": {"content": "x"}}]}]

    async def aclose(self) -> None:
        self.closed = True


def streaming(upstream: Upstream) -> Callable[[Call], Awaitable[None]]:
    async def handler(call: Call) -> None:
        await answered()(call)
        call.usage = None  # arrives with the last chunk

        async def batches() -> AsyncIterator[list[dict[str, Any]]]:
            async for b in upstream:
                yield b
            call.usage = dict(USAGE)

        call.result = batches()
    return handler


async def test_stream_counts_at_its_end_with_time_to_first_byte() -> None:
    s, m = stage()
    call = make_call(stream=True)
    await s(call, streaming(Upstream(3)))
    labels = {"route": "m", "tenant": "acme"}
    # Nothing yet: the stream has not been consumed.
    assert value(m, "ostiary_requests_total", deployment="dep-m", status="200", **labels) == 0
    assert call.result is not None and not isinstance(call.result, dict)
    got = [b async for b in call.result]
    assert len(got) == 3
    await close_stream(call.result)
    assert value(m, "ostiary_requests_total", deployment="dep-m", status="200", **labels) == 1
    assert value(m, "ostiary_tokens_total", direction="out", **labels) == 7
    assert value(m, "ostiary_time_to_first_byte_seconds_count", **labels) == 1
    assert call.first_byte is not None and call.first_byte >= call.started


async def test_stream_failing_after_headers_counts_the_error_status() -> None:
    s, m = stage()
    call = make_call(stream=True)
    await s(call, streaming(Upstream(1, GatewayError("upstream died", status=502, code="upstream_error"))))
    assert call.result is not None and not isinstance(call.result, dict)
    with pytest.raises(GatewayError):
        async for _ in call.result:
            pass
    await close_stream(call.result)
    assert value(m, "ostiary_requests_total", route="m", deployment="dep-m", status="502", tenant="acme") == 1
    assert value(m, "ostiary_requests_total", route="m", deployment="dep-m", status="499", tenant="acme") == 0


async def test_abandoned_stream_counts_499_once() -> None:
    s, m = stage()
    call = make_call(stream=True)
    upstream = Upstream(5)
    await s(call, streaming(upstream))
    assert call.result is not None and not isinstance(call.result, dict)
    await call.result.__anext__()
    await close_stream(call.result)
    await close_stream(call.result)
    assert value(m, "ostiary_requests_total", route="m", deployment="dep-m", status="499", tenant="acme") == 1


async def test_cache_hits_registered_at_zero() -> None:
    _, m = stage()
    assert b"# TYPE ostiary_cache_hits_total counter" in m.exposition()


def test_breakers_and_audit_queue_read_at_scrape_time() -> None:
    health = {"dep-m": {"breaker": "open", "in_flight": 2}, "dep-fb": {"breaker": "closed", "in_flight": 0}}
    lag = [(3, 0.25)]
    t = Telemetry(CONFIG.telemetry, lambda: health, lambda: lag[0])
    m = t.metrics
    assert value(m, "ostiary_breaker_state", deployment="dep-m") == 2
    assert value(m, "ostiary_breaker_state", deployment="dep-fb") == 0
    assert value(m, "ostiary_deployment_in_flight", deployment="dep-m") == 2
    assert value(m, "ostiary_audit_queue_bytes") == 3
    assert value(m, "ostiary_audit_lag_seconds") == 0.25
    health["dep-fb"]["breaker"] = "half_open"
    lag[0] = (0, 0.01)
    assert value(m, "ostiary_breaker_state", deployment="dep-fb") == 1
    assert value(m, "ostiary_audit_queue_bytes") == 0


def test_registries_are_per_gateway() -> None:
    a, b = Metrics(), Metrics()
    a.requests.inc(("m", "d", "200", "t"))
    assert b.registry.get_sample_value("ostiary_requests_total", {"route": "m", "deployment": "d", "status": "200",
                                                                   "tenant": "t"}) is None
