"""What the telemetry stage costs a request, in process: µs per call added by `TelemetryStage`.

Runs the stage around a trivial handler (the handler sets what the router would: principal,
deployment, attempts, usage, cost, two guardrail verdicts) and subtracts the same loop without the
stage. Cases: a plain answer, the same with an incoming `traceparent`, a refused call
(GatewayError), a stream of 20 batches (the wrapper's cost for the whole stream), each without and
with OpenTelemetry spans (a BatchSpanProcessor to an exporter that drops the spans: the export
itself runs on the processor's thread, off the request), recorded or sampled out. Then the trace-id part alone, and the cost
of one scrape of /metrics with many series. Median of several runs, each the mean of many calls.

Run: `.venv/bin/python bench/telemetry.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from ostiary.config.schema import Config
from ostiary.config.schema import Telemetry as TelemetrySettings
from ostiary.errors import GatewayError
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Attempt, Call
from ostiary.telemetry import Telemetry, TelemetryStage
from ostiary.telemetry.metrics import Metrics
from ostiary.telemetry.traces import new_ids, parse_traceparent

RUNS = 7
CALLS = 5_000
ACME = Principal(kind="key", subject="ost-a", tenant="acme", user="alice", role="developer",
                 scopes=frozenset({"chat"}), models=None, clearance="internal")
CONFIG = Config.model_validate({"routes": [
    {"name": "m", "deployments": [{"provider": "openai", "model": "gpt-up", "id": "dep-m"}]}]})
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VERDICTS = [{"scanner": "pii", "policy": "p", "version": "1", "action": "allow"},
            {"scanner": "injection", "policy": "p", "version": "1", "action": "allow"}]
Handler = Callable[[Call], Awaitable[None]]


def make_call(stream: bool = False, traceparent: bool = False) -> Call:
    c = Call(id="r", api="openai.chat", body={"model": "m", "messages": [], "max_tokens": 64}, model="m",
             stream=stream, config_version="v1")
    if traceparent:
        c.decisions["traceparent"] = TRACEPARENT
    return c


def fill(call: Call) -> None:
    call.principal = ACME
    call.route, call.deployment, call.upstream_model = "m", "dep-m", "gpt-up"
    call.attempts.append(Attempt("m", "dep-m", 0.0))
    call.usage = {"prompt_tokens": 100, "completion_tokens": 50}
    call.decisions["cost_usd"] = 0.0002
    call.decisions["guardrails"] = VERDICTS


async def answer(call: Call) -> None:
    fill(call)
    call.result = {"choices": []}


async def refuse(call: Call) -> None:
    call.principal = ACME
    raise GatewayError("slow down", status=429, code="rate_limit_exceeded")


async def stream(call: Call) -> None:
    fill(call)

    async def batches() -> AsyncIterator[list[dict[str, Any]]]:
        for _ in range(20):
            yield [{}]

    call.result = batches()


async def drive(stage: TelemetryStage | None, handler: Handler, streaming: bool, traceparent: bool) -> float:
    """Seconds per call."""
    t0 = time.perf_counter()
    for _ in range(CALLS):
        call = make_call(streaming, traceparent)
        try:
            if stage is None:
                await handler(call)
            else:
                await stage(call, handler)
        except GatewayError:
            pass
        if streaming:
            result = call.result
            assert result is not None and not isinstance(result, dict)
            async for _ in result:
                pass
    return (time.perf_counter() - t0) / CALLS


def median_us(stage: TelemetryStage | None, handler: Handler, streaming: bool, traceparent: bool) -> float:
    runs = [asyncio.run(drive(stage, handler, streaming, traceparent)) for _ in range(RUNS)]
    return statistics.median(runs) * 1e6


class DropExporter:
    """An exporter that accepts and drops every batch (the export is not what is measured)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stages() -> list[tuple[str, TelemetryStage, Telemetry | None]]:
    out: list[tuple[str, TelemetryStage, Telemetry | None]] = [
        ("metrics + trace id", TelemetryStage(Metrics(), None, CONFIG, "v1"), None)]
    for label, ratio in (("+ OTel span (OTLP)", 1.0), ("+ OTel, sampled out", 0.0)):
        try:
            t = Telemetry(TelemetrySettings(otlp_sample_ratio=ratio), exporter=DropExporter())
        except Exception as e:  # noqa: BLE001 - the otel extra is optional
            print(f"(no OpenTelemetry spans measured: {e})")
            return out
        out.append((label, TelemetryStage(t.metrics, t.tracer, CONFIG, "v1"), t))
    return out


def main() -> None:
    cases = [("plain answer", answer, False, False), ("answer, incoming traceparent", answer, False, True),
             ("refused (GatewayError)", refuse, False, False), ("stream of 20 batches", stream, True, False)]
    built = stages()
    print(f"µs per call added by the telemetry stage (median of {RUNS} runs x {CALLS} calls)\n")
    print(f"{'case':32} {'baseline':>9} " + " ".join(f"{name:>20}" for name, _, _ in built))
    for label, handler, streaming, tp in cases:
        base = median_us(None, handler, streaming, tp)
        added = [median_us(stage, handler, streaming, tp) - base for _, stage, _ in built]
        print(f"{label:32} {base:9.2f} " + " ".join(f"{a:20.2f}" for a in added))
    for _, _, t in built:
        if t is not None:
            t.close()

    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        parse_traceparent(TRACEPARENT)
    parse = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        new_ids()
    ids = (time.perf_counter() - t0) / n * 1e6
    print(f"\ntrace id alone: parse a traceparent {parse:.2f} µs, new random ids {ids:.2f} µs")

    m = Metrics(lambda: {f"dep-{i}": {"breaker": "closed", "in_flight": 0} for i in range(20)}, lambda: (0, 0.1))
    for r in range(10):
        for t_ in range(50):
            for status in ("200", "429", "502"):
                s = m.request(f"route-{r}", f"dep-{r}", status, f"tenant-{t_}")
                s.requests[0] += 1
                m.duration.observe(s.duration, 0.5)
    body = m.exposition()
    t0 = time.perf_counter()
    for _ in range(10):
        m.exposition()
    scrape = (time.perf_counter() - t0) / 10 * 1e3
    print(f"one /metrics rendering, 10 routes x 50 tenants x 3 statuses ({len(body) // 1024} KB): {scrape:.1f} ms "
          "(GET /metrics renders in a thread, off the event loop)")


if __name__ == "__main__":
    main()
