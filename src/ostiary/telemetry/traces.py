"""Trace context: W3C `traceparent` parsing and ids (always on), and OpenTelemetry spans (optional).

Every call gets a trace id: the one of a valid incoming `traceparent` header, else a random one.
It is in the audit event (`trace_id`) and in the `traceparent` response header, so a request can be
followed from the client through the gateway's spans to its audit record.

The spans need the `otel` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http) and
`telemetry.otlp_endpoint`. One span per request, `chat {model}` / `embeddings {model}`, with the
OpenTelemetry GenAI semantic conventions (gen_ai.*) and ostiary.* attributes; never a prompt or an
answer. The SDK is imported only when configured, and its tracer provider is the gateway's own (not
the process-global one), so several gateways can live in one process.
"""

from __future__ import annotations

import random
import re
from typing import Any
from urllib.parse import urlsplit

from ostiary.config.load import ConfigError
from ostiary.config.schema import Telemetry as TelemetrySettings

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
OTEL_EXTRA = "pip install 'ostiary[otel]'"


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid version-00 `traceparent`, else None."""
    if not value:
        return None
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    trace, parent, flags = m.groups()
    if trace == _ZERO_TRACE or parent == _ZERO_SPAN:
        return None
    return trace, parent, flags


def new_ids() -> tuple[str, str]:
    """A random (trace id, span id): 128 and 64 bits, lowercase hex. Ids need to be unique, not
    secret (W3C Trace Context, security considerations): the process PRNG (reseeded in a forked
    child) is half the cost of os.urandom."""
    h = f"{random.getrandbits(192):048x}"
    return h[:32], h[32:]


def child_of(parent: tuple[str, str, str] | None) -> tuple[str, str, str]:
    """(trace id, new span id, flags) of a span that continues `parent` (a parsed traceparent),
    or starts a new trace."""
    trace_id, span_id = new_ids()
    if parent is None:
        return trace_id, span_id, "01"
    return parent[0], span_id, parent[2]


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: an endpoint given without a path gets the standard `/v1/traces`."""
    return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") else endpoint


class Tracer:
    """The gateway's OpenTelemetry tracer: a tracer provider with a batch processor to OTLP/HTTP."""

    def __init__(self, cfg: TelemetrySettings, exporter: Any = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.context import Context
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
            from opentelemetry.trace import (
                NonRecordingSpan,
                SpanContext,
                SpanKind,
                Status,
                StatusCode,
                TraceFlags,
            )
            if exporter is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            why = f"traces need the OpenTelemetry packages of the 'otel' extra ({OTEL_EXTRA}); {e}"
            raise ConfigError("telemetry.otlp_endpoint", [f"telemetry.otlp_endpoint: {why}"]) from None
        if exporter is None:
            assert cfg.otlp_endpoint is not None
            exporter = OTLPSpanExporter(endpoint=traces_url(cfg.otlp_endpoint),
                                        headers={k: v.get_secret_value() for k, v in cfg.otlp_headers.items()})
        # A sampled-out span costs a fraction of a recorded one; a caller's sampled flag is followed.
        self.provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name}),
                                       sampler=ParentBased(TraceIdRatioBased(cfg.otlp_sample_ratio)))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("ostiary")
        self._trace = trace
        self._context = Context
        self._remote = (NonRecordingSpan, SpanContext, TraceFlags)
        self._client = SpanKind.CLIENT
        self._error = (Status, StatusCode.ERROR)

    def start(self, name: str, parent: tuple[str, str, str] | None, attributes: dict[str, Any]) -> Any:
        """A started span, child of the remote parent when there is one (so it carries its trace id)."""
        if parent is None:
            ctx = self._context()
        else:
            non_recording, span_context, flags = self._remote
            remote = span_context(trace_id=int(parent[0], 16), span_id=int(parent[1], 16), is_remote=True,
                                  trace_flags=flags(int(parent[2], 16) & 1))
            ctx = self._trace.set_span_in_context(non_recording(remote), self._context())
        # CLIENT: the GenAI conventions' kind for a call to a model (the gateway calls the upstream).
        return self.tracer.start_span(name, context=ctx, kind=self._client, attributes=attributes)

    def fail(self, span: Any, error_type: str) -> None:
        status, error = self._error
        span.set_attribute("error.type", error_type)
        span.set_status(status(error))

    def flush(self) -> None:
        self.provider.force_flush()

    def close(self) -> None:
        self.provider.shutdown()  # the batch processor exports what it holds, then stops
