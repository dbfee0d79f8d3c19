"""Prometheus metrics: one registry per gateway, served by `GET /metrics`.

Labels and cardinality (every label value is bounded by the configuration or by a small fixed set):

- `route`: the route the client asked for, when it is a configured route; "" otherwise (an unknown
  model name is client input and never becomes a label value). A fallback is still counted under
  the route asked for; `ostiary_fallbacks_total` says where it went.
- `deployment`: the configured deployment that answered; "" when none did (refused, failed).
- `status`: the HTTP status of the outcome ("200", "429", ...). A stream that fails after its
  headers (HTTP 200 already sent) counts with its error's status; one the client abandoned, 499.
  The histograms take only the status class ("2xx", "4xx", "5xx") and no deployment, so they stay
  at routes x tenants x 3 x buckets series.
- `tenant`: the principal's tenant ("" before authentication). Tenants are created by an
  administrator or named by a trusted token issuer, so their number is the number of customers.
- guardrail verdicts: `scanner`, `action` and `policy` (a configured policy name).
- release calls: `release` (an id an administrator created), `arm` and the status class.

Hot path: the request metrics are plain Python cells (a list per series) that the stage updates on
the event loop: no lock, no `labels()` call, one dict lookup per label tuple (`Metrics.request`
returns every cell of a (route, deployment, status, tenant) tuple at once). A collector turns them
into Prometheus families when scraped, on the prometheus_client registry of this gateway (several
gateways in one process have their own). State that lives elsewhere (breakers, the audit queue) is
read at scrape time too. bench/telemetry.py measures what a request pays.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# The classic text format: every Prometheus version (and other scrapers) reads it.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# LLM calls take from tens of milliseconds (embeddings, a short answer) to minutes (long generations).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
FIRST_BYTE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

Cell = list[float]  # a counter: [value]; a histogram: [per-bucket counts..., +Inf count, sum]


class Counters:
    """A counter family as cells keyed by label values."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...]) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.cells: dict[tuple[str, ...], Cell] = {}

    def cell(self, key: tuple[str, ...]) -> Cell:
        c = self.cells.get(key)
        if c is None:
            c = self.cells[key] = [0.0]
        return c

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.cell(key)[0] += amount

    def family(self) -> Metric:
        f = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, c in list(self.cells.items()):
            f.add_metric(key, c[0])
        return f


class Histograms:
    """A histogram family as cells keyed by label values; `observe(cell, x)` is the hot-path call."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.doc, self.labels, self.buckets = name, doc, labels, buckets
        self.cells: dict[tuple[str, ...], Cell] = {}

    def cell(self, key: tuple[str, ...]) -> Cell:
        c = self.cells.get(key)
        if c is None:
            c = self.cells[key] = [0.0] * (len(self.buckets) + 2)
        return c

    def observe(self, cell: Cell, x: float) -> None:
        cell[bisect_left(self.buckets, x)] += 1  # the first bucket whose bound is >= x (le), else +Inf
        cell[-1] += x

    def family(self) -> Metric:
        f = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for key, c in list(self.cells.items()):
            counts = c[:-1]
            total, cumulative = 0.0, []
            for bound, n in zip(bounds, counts, strict=True):
                total += n
                cumulative.append((bound, total))
            f.add_metric(key, cumulative, sum_value=c[-1])
        return f


class RequestSeries:
    """The cells of every per-request metric for one (route, deployment, status, tenant)."""

    __slots__ = ("cost", "duration", "first_byte", "requests", "tokens_in", "tokens_out")

    def __init__(self, m: Metrics, route: str, deployment: str, status: str, tenant: str) -> None:
        status_class = status[0] + "xx" if len(status) == 3 else status
        self.requests = m.requests.cell((route, deployment, status, tenant))
        self.duration = m.duration.cell((route, status_class, tenant))
        self.tokens_in = m.tokens.cell(("in", route, tenant))
        self.tokens_out = m.tokens.cell(("out", route, tenant))
        self.cost = m.cost.cell((route, tenant))
        self.first_byte = (route, tenant)  # a stream's cell is made on its first use


class Metrics:
    def __init__(self, breakers: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 audit_lag: Callable[[], tuple[int, float]] | None = None) -> None:
        self.requests = Counters("ostiary_requests", "Requests served, by outcome",
                                 ("route", "deployment", "status", "tenant"))
        self.duration = Histograms("ostiary_request_duration_seconds", "Request duration, from the parsed "
                                   "request to the answer's (or the stream's) end", ("route", "status_class", "tenant"),
                                   DURATION_BUCKETS)
        self.first_byte = Histograms("ostiary_time_to_first_byte_seconds", "Streams: time until the first batch "
                                     "of chunks was ready for the client", ("route", "tenant"), FIRST_BYTE_BUCKETS)
        self.tokens = Counters("ostiary_tokens", "Tokens as reported by the upstream: in (prompt) and out "
                               "(completion)", ("direction", "route", "tenant"))
        self.cost = Counters("ostiary_cost_usd", "Cost of the requests in US dollars, at the configured prices",
                             ("route", "tenant"))
        self.verdicts = Counters("ostiary_guardrail_verdicts", "Guardrail verdicts", ("scanner", "action", "policy"))
        self.attempts = Counters("ostiary_upstream_attempts", "Upstream attempts, by outcome (ok, retry, next, "
                                 "failed, skipped)", ("route", "deployment", "outcome"))
        self.retries = Counters("ostiary_retries", "Upstream attempts that were retried on the same deployment",
                                ("route", "deployment"))
        self.fallbacks = Counters("ostiary_fallbacks", "Requests answered by a fallback route", ("route", "fallback"))
        self.releases = Counters("ostiary_release_calls", "Calls on the arms of progressive releases, by outcome",
                                 ("release", "arm", "status_class"))
        self.registry = CollectorRegistry(auto_describe=False)
        # The response cache does not exist yet: this counter is registered (so that dashboards and
        # alerts can be written against it) and stays at zero until the cache increments it.
        self.cache_hits = Counter("ostiary_cache_hits", "Answers served from the response cache", ("route",),
                                  registry=self.registry)
        self.state = StateCollector(breakers, audit_lag)
        self.registry.register(_Families(self))
        self.registry.register(self.state)
        self._series: dict[tuple[str, str, str, str], RequestSeries] = {}

    def request(self, route: str, deployment: str, status: str, tenant: str) -> RequestSeries:
        key = (route, deployment, status, tenant)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = RequestSeries(self, route, deployment, status, tenant)
        return s

    def finished(self, route: str, deployment: str, status: str, tenant: str, seconds: float) -> RequestSeries:
        """Count one finished request and its duration; its series, for what else it counts."""
        s = self.request(route, deployment, status, tenant)
        s.requests[0] += 1
        self.duration.observe(s.duration, seconds)
        return s

    def attempt(self, route: str, deployment: str, outcome: str) -> None:
        self.attempts.inc((route, deployment, outcome))
        if outcome == "retry":
            self.retries.inc((route, deployment))

    def exposition(self) -> bytes:
        """The text exposition, rendered here (tests, small registries)."""
        self.state.take()
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """The text exposition for GET /metrics: the state read on the event loop (where it changes),
        the rendering (milliseconds for thousands of series) in a thread, off the loop."""
        self.state.take()
        return await asyncio.to_thread(generate_latest, self.registry)


class _Families(Collector):
    def __init__(self, m: Metrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        m = self.m
        for table in (m.requests, m.duration, m.first_byte, m.tokens, m.cost, m.verdicts, m.attempts, m.retries,
                      m.fallbacks, m.releases):
            yield table.family()


class StateCollector(Collector):
    """Breaker states and the audit queue, as read by the last `take()`."""

    def __init__(self, breakers: Callable[[], dict[str, dict[str, Any]]] | None,
                 audit_lag: Callable[[], tuple[int, float]] | None) -> None:
        self.breakers = breakers
        self.audit_lag = audit_lag
        self.health: dict[str, dict[str, Any]] = {}
        self.lag: tuple[int, float] | None = None

    def take(self) -> None:
        self.health = self.breakers() if self.breakers is not None else {}
        self.lag = self.audit_lag() if self.audit_lag is not None else None

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("ostiary_breaker_state", "Circuit breaker per deployment: 0 closed, "
                                  "1 half-open, 2 open", labels=["deployment"])
        in_flight = GaugeMetricFamily("ostiary_deployment_in_flight", "Upstream calls in flight per deployment",
                                      labels=["deployment"])
        for name, h in self.health.items():
            state.add_metric([name], BREAKER_STATES.get(str(h.get("breaker")), 0.0))
            in_flight.add_metric([name], float(h.get("in_flight") or 0))
        yield state
        yield in_flight
        if self.lag is not None:
            depth, lag = self.lag
            yield GaugeMetricFamily("ostiary_audit_queue_bytes", "Bytes of audit records acknowledged (spooled) "
                                    "and not yet in the store", value=depth)
            yield GaugeMetricFamily("ostiary_audit_lag_seconds", "Seconds since the audit drainer last "
                                    "succeeded", value=lag)
