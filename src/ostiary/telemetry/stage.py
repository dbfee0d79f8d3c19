"""The telemetry stage: trace context for every call, then metrics (and a span) at the call's end.

It runs right after the audit stage, so the trace id is in `call.decisions` before any later stage
can refuse the request, and the audit event carries it. It records at the request's end: after the
answer for a plain call, when a GatewayError (or anything else) stops the call, and for a stream
when its last batch has passed (or it failed or was abandoned), by wrapping the stream like
audit/stage.py does. Inner stages (limits) have settled usage and cost by then.

The server puts the raw `traceparent` request header in `call.decisions["traceparent"]`; this stage
takes it out and puts the trace id in `call.decisions["trace_id"]`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ostiary.config.schema import Config
from ostiary.errors import GatewayError
from ostiary.pipeline.call import Call, close_stream
from ostiary.pipeline.stage import Handler
from ostiary.telemetry.metrics import Metrics
from ostiary.telemetry.traces import Tracer, child_of, parse_traceparent

log = logging.getLogger("ostiary.telemetry")
Batches = AsyncIterator[list[dict[str, Any]]]

# gen_ai.provider.name values of the GenAI semantic conventions' registry.
_REQUEST_PARAMS = (("max_tokens", "gen_ai.request.max_tokens"), ("max_completion_tokens", "gen_ai.request.max_tokens"),
                   ("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p"))
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "mock": "ostiary.mock"}


class TelemetryStage:
    name = "telemetry"

    def __init__(self, metrics: Metrics, tracer: Tracer | None, config: Config, version: str) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.version = version
        self.routes = frozenset(r.name for r in config.routes)
        self.providers = {d.name: _PROVIDERS.get(d.provider, d.provider) for r in config.routes for d in r.deployments}

    async def __call__(self, call: Call, next: Handler) -> None:
        raw = call.decisions.pop("traceparent", None)
        parent = parse_traceparent(raw) if raw else None
        span = None
        if self.tracer is not None:
            span = self._start(call, parent)
            sc = span.get_span_context()
            trace_id, span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
            flags = "01" if sc.trace_flags & 1 else "00"
        else:
            trace_id, span_id, flags = child_of(parent)
        call.decisions["trace_id"] = trace_id
        header = f"00-{trace_id}-{span_id}-{flags}"
        call.response_headers.append((b"traceparent", header.encode()))
        try:
            await next(call)
        except GatewayError as e:
            # An error answer does not carry call.response_headers: give it the traceparent too.
            e.headers = {**e.headers, "traceparent": header}
            self.record(call, e.status, e.code or e.type, span)
            raise
        except asyncio.CancelledError:
            self.record(call, 499, "client_disconnected", span)
            raise
        except Exception as e:
            self.record(call, 500, e.__class__.__name__, span)
            raise
        if call.stream and call.result is not None and not isinstance(call.result, dict):
            call.result = MeteredStream(call.result, self, call, span)
        else:
            self.record(call, 200, None, span)

    def _start(self, call: Call, parent: tuple[str, str, str] | None) -> Any:
        assert self.tracer is not None
        op = call.kind
        # Only what a sampler may look at; the rest is set at the end, on recorded spans only.
        return self.tracer.start(f"{op} {call.model}", parent,
                                 {"gen_ai.operation.name": op, "gen_ai.request.model": call.model})

    def record(self, call: Call, status: int, error: str | None, span: Any) -> None:
        """Count a finished call (and end its span), then run the call's end hooks. Never raises
        into the request."""
        try:
            self._record(call, status, error, span)
        except Exception:
            log.exception("could not record the metrics of request %s", call.id)
        if call.on_end:
            try:
                call.ended(status)
            except Exception:
                log.exception("an end hook of request %s failed", call.id)

    def _record(self, call: Call, status: int, error: str | None, span: Any) -> None:
        now = time.perf_counter()
        p = call.principal
        tenant = p.tenant if p is not None else ""
        route = call.model if call.model in self.routes else ""
        m = self.metrics
        s = m.finished(route, call.deployment or "", str(status), tenant, now - call.started)
        if call.stream and call.first_byte is not None:
            m.first_byte.observe(m.first_byte.cell(s.first_byte), call.first_byte - call.started)
        usage = call.usage if isinstance(call.usage, dict) else None
        tokens_in = tokens_out = 0
        if usage is not None:
            tokens_in = usage.get("prompt_tokens") or 0
            tokens_out = usage.get("completion_tokens") or 0
            if tokens_in > 0:
                s.tokens_in[0] += tokens_in
            if tokens_out > 0:
                s.tokens_out[0] += tokens_out
        decisions = call.decisions
        spent = decisions.get("cost_usd")
        if spent and spent > 0:
            s.cost[0] += spent
        verdicts = decisions.get("guardrails")
        if verdicts:
            for v in verdicts:
                m.verdicts.inc((str(v.get("scanner")), str(v.get("action")), str(v.get("policy"))))
        for a in call.attempts:
            m.attempt(a.route, a.deployment, a.outcome)
        if call.route is not None and call.route != call.model and route:
            m.fallbacks.inc((route, call.route))
        arms = decisions.get("release")
        if arms:
            status_class = f"{status // 100}xx"
            for a in arms:
                m.releases.inc((a["id"], a["arm"], status_class))
        if span is not None:
            self._end(span, call, status, error, tenant, usage, tokens_in, tokens_out, verdicts)

    def _end(self, span: Any, call: Call, status: int, error: str | None, tenant: str, usage: dict[str, Any] | None,
             tokens_in: int, tokens_out: int, verdicts: list[dict[str, Any]] | None) -> None:
        if not span.is_recording():  # not sampled: nothing to set, nothing to export
            return
        attrs: dict[str, Any] = {"ostiary.tenant": tenant, "ostiary.request_id": call.id,
                                 "ostiary.config_version": self.version, "ostiary.api": call.api,
                                 "http.response.status_code": status}
        if call.stream:
            attrs["ostiary.stream"] = True
        body = call.body
        for key, attr in _REQUEST_PARAMS:
            v = body.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool):
                attrs[attr] = v
        if call.route is not None:
            attrs["ostiary.route"] = call.route
        if call.deployment is not None:
            attrs["ostiary.deployment"] = call.deployment
            provider = self.providers.get(call.deployment)
            if provider is not None:
                attrs["gen_ai.provider.name"] = provider
                attrs["gen_ai.system"] = provider  # its name before semconv 1.37, still read by many backends
        if call.upstream_model is not None:
            attrs["gen_ai.response.model"] = call.upstream_model
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = tokens_in
            if call.kind == "chat":
                attrs["gen_ai.usage.output_tokens"] = tokens_out
        if len(call.attempts) > 1:
            attrs["ostiary.attempts"] = len(call.attempts)
        if verdicts:
            attrs["ostiary.guardrail.actions"] = [f"{v.get('scanner')}:{v.get('action')}" for v in verdicts]
        span.set_attributes(attrs)
        if error is not None and self.tracer is not None:
            self.tracer.fail(span, error)
        span.end()


class MeteredStream:
    """Passes a stream's batches through; records the call when the stream ends, fails or is dropped."""

    __slots__ = ("batches", "call", "done", "span", "stage")

    def __init__(self, batches: Batches, stage: TelemetryStage, call: Call, span: Any) -> None:
        self.batches = batches
        self.stage = stage
        self.call = call
        self.span = span
        self.done = False

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        try:
            batch = await self.batches.__anext__()
        except StopAsyncIteration:
            self._end(200, None)
            raise
        except GatewayError as e:
            # The headers (200) are gone; the outcome is the error's status.
            self._end(e.status, e.code or e.type)
            raise
        except asyncio.CancelledError:
            self._end(499, "client_disconnected")
            raise
        except Exception as e:
            self._end(500, e.__class__.__name__)
            raise
        if self.call.first_byte is None:
            self.call.first_byte = time.perf_counter()
        return batch

    def _end(self, status: int, error: str | None) -> None:
        if not self.done:
            self.done = True
            self.stage.record(self.call, status, error, self.span)

    async def aclose(self) -> None:
        try:
            await close_stream(self.batches)
        finally:
            self._end(499, "stream_interrupted")
