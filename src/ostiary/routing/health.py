"""Per-deployment health: circuit breaker, latency EWMA and in-flight count.

Health outlives a config reload (it is keyed by the deployment's name), so a reload neither forgets
a failing upstream nor resets what was learnt about latency.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from ostiary.config.schema import Breaker as BreakerSettings

State = Literal["closed", "open", "half_open"]
EWMA_ALPHA = 0.2  # weight of the newest sample; ~5 recent calls dominate


BUCKETS = 10  # the window is kept as 10 time buckets of counts, not one entry per call


@dataclass(slots=True)
class Breaker:
    """Opens on a failure ratio over a time window; after a cooldown lets one probe through.

    Outcomes are counted in `BUCKETS` time buckets per window, so memory and work per call stay
    constant at any request rate (a deque of every outcome would hold ~150,000 entries over a 30 s
    window at 5,000 requests/s, and the garbage collector would pay for them on every pass).
    """

    settings: BreakerSettings
    state: State = "closed"
    opened_at: float = 0.0
    probing: bool = False
    buckets: deque[list[float]] = field(default_factory=deque)  # [bucket start, ok, failed]

    def allow(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and now - self.opened_at >= self.settings.cooldown:
            self.state = "half_open"
            self.probing = False
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in(self, now: float) -> float:
        return max(0.0, self.opened_at + self.settings.cooldown - now)

    def record(self, ok: bool, now: float) -> None:
        if self.state == "half_open":
            self.probing = False
            if ok:
                self.state = "closed"
                self.buckets.clear()
            else:
                self._open(now)
            return
        width = self.settings.window / BUCKETS
        buckets = self.buckets
        if not buckets or now - buckets[-1][0] >= width:
            buckets.append([now, 0.0, 0.0])
        buckets[-1][1 if ok else 2] += 1
        horizon = now - self.settings.window
        while buckets[0][0] + width <= horizon:
            buckets.popleft()
        if not ok:
            failed = sum(b[2] for b in buckets)
            total = failed + sum(b[1] for b in buckets)
            if total >= self.settings.min_requests and failed / total >= self.settings.failure_ratio:
                self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.buckets.clear()


@dataclass(slots=True)
class Health:
    breaker: Breaker
    ewma_latency: float | None = None
    in_flight: int = 0

    def observe_latency(self, seconds: float) -> None:
        prev = self.ewma_latency
        self.ewma_latency = seconds if prev is None else prev + EWMA_ALPHA * (seconds - prev)


class HealthBook:
    """All deployments' health, shared by every config version."""

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._health: dict[str, Health] = {}

    def configure(self, settings: BreakerSettings) -> None:
        self.settings = settings
        for h in self._health.values():
            h.breaker.settings = settings

    def get(self, name: str) -> Health:
        h = self._health.get(name)
        if h is None:
            h = self._health[name] = Health(Breaker(self.settings))
        return h

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = time.monotonic()
        return {
            name: {"breaker": h.breaker.state, "retry_in": round(h.breaker.retry_in(now), 3)
                   if h.breaker.state == "open" else 0.0,
                   "ewma_latency_ms": None if h.ewma_latency is None else round(h.ewma_latency * 1000, 2),
                   "in_flight": h.in_flight}
            for name, h in self._health.items()
        }
