"""Order a route's deployments for one call, by the route's strategy.

The order is the try order: the first is called, the next ones are fallbacks within the route.
Randomness breaks ties so that equal deployments share the load.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ostiary.config.schema import Deployment, Strategy
from ostiary.routing.health import Health

Ordering = Callable[[Sequence[Deployment], Callable[[str], Health]], list[Deployment]]


def weighted(deps: Sequence[Deployment], health: Callable[[str], Health]) -> list[Deployment]:
    # Weighted sampling without replacement (Efraimidis-Spirakis): sort by U^(1/w), largest first.
    return sorted(deps, key=lambda d: random.random() ** (1.0 / d.weight), reverse=True)


def priority(deps: Sequence[Deployment], health: Callable[[str], Health]) -> list[Deployment]:
    # Lowest priority number first; within one priority, weighted.
    return sorted(weighted(deps, health), key=lambda d: d.priority)


def latency(deps: Sequence[Deployment], health: Callable[[str], Health]) -> list[Deployment]:
    # Unmeasured deployments go first so every one gets measured.
    def key(d: Deployment) -> float:
        ewma = health(d.name).ewma_latency
        return -1.0 if ewma is None else ewma

    return sorted(weighted(deps, health), key=key)


def least_busy(deps: Sequence[Deployment], health: Callable[[str], Health]) -> list[Deployment]:
    return sorted(weighted(deps, health), key=lambda d: health(d.name).in_flight)


STRATEGIES: dict[Strategy, Ordering] = {
    "weighted": weighted,
    "priority": priority,
    "latency": latency,
    "least_busy": least_busy,
}
