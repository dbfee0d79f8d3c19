"""Telemetry: Prometheus metrics (`GET /metrics`) and trace context, with optional OpenTelemetry spans.

`Telemetry` belongs to the gateway and outlives config reloads (counters keep counting across
versions); each runtime builds a `TelemetryStage` around it. See metrics.py for the metric names,
labels and cardinality, traces.py for trace ids and spans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ostiary.config.schema import Telemetry as TelemetrySettings
from ostiary.errors import Forbidden
from ostiary.telemetry.metrics import CONTENT_TYPE, Metrics
from ostiary.telemetry.stage import TelemetryStage
from ostiary.telemetry.traces import Tracer, child_of, parse_traceparent

__all__ = ["CONTENT_TYPE", "Metrics", "Telemetry", "TelemetryStage", "Tracer", "parse_traceparent",
           "require_metrics_reader"]

METRICS_ROLES = ("admin", "auditor")


class Telemetry:
    """The metrics registry and the tracer of one gateway (OTLP settings are read at start)."""

    def __init__(self, cfg: TelemetrySettings, breakers: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 audit_lag: Callable[[], tuple[int, float]] | None = None, exporter: Any = None) -> None:
        self.metrics = Metrics(breakers, audit_lag)
        # Built (and the SDK imported) here, at gateway build: a missing extra fails the start.
        self.tracer = Tracer(cfg, exporter) if cfg.otlp_endpoint or exporter is not None else None

    def refused(self, call: Any, status: int) -> str:
        """Count a request refused before the pipeline (malformed, too large, unknown endpoint) and
        give it a trace id (in its audit event); the `traceparent` its answer carries."""
        raw = call.decisions.pop("traceparent", None)
        trace_id, span_id, flags = child_of(parse_traceparent(raw) if raw else None)
        call.decisions["trace_id"] = trace_id
        self.metrics.finished("", "", str(status), "", time.perf_counter() - call.started)
        return f"00-{trace_id}-{span_id}-{flags}"

    def exposition(self) -> bytes:
        return self.metrics.exposition()

    async def scrape(self) -> bytes:
        return await self.metrics.scrape()

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.close()


def require_metrics_reader(principal: Any) -> None:
    """Private metrics (`telemetry.metrics_public: false`): an admin-scoped admin or auditor only.

    Metrics are gateway-wide (every tenant's series), so an auditor here reads all of them."""
    if "admin" not in principal.scopes or principal.role not in METRICS_ROLES:
        raise Forbidden("The metrics of this gateway need a credential with the 'admin' scope and the role "
                        "admin or auditor.", code="metrics_private")
