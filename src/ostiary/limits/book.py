"""The limits and budgets the request path reads, held in memory and reloaded on every change.

The admin API stores budgets and limit overrides per scope (`tenant:acme`, `team:acme/risk`,
`user:acme/alice`, `key:<lineage>`). `Book.load` reads them, plus what each budget has already spent
in its current period according to the usage table: a budget counter that does not exist yet (a new
period, a flushed Redis, a restarted single node) starts from that figure, so a restart does not
hand out a month's budget twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ostiary.identity.principal import Principal
from ostiary.limits.settings import BudgetRule, LimitRule, load_budgets, load_limits, parse_scope
from ostiary.store import Store
from ostiary.store.schema import api_keys, usage

log = logging.getLogger("ostiary.limits")


def scopes_of(p: Principal) -> list[tuple[str, str]]:
    """(kind, scope) for every scope a principal counts under, narrowest first."""
    # The credential: a key by its lineage (rotation keeps its limits and spend), a token by subject.
    out = [("key", f"key:{p.lineage or p.subject}" if p.kind == "key" else f"{p.kind}:{p.subject}")]
    if p.user:
        out.append(("user", f"user:{p.tenant}/{p.user}"))
    if p.team:
        out.append(("team", f"team:{p.tenant}/{p.team}"))
    out.append(("tenant", f"tenant:{p.tenant}"))
    return out


@dataclass(frozen=True, slots=True)
class Period:
    id: str  # "2026-11-28", "2026-11" or "total"
    start: datetime | None  # UTC; None for "total"
    end: float  # epoch seconds when it is over (inf for "total")

    @property
    def ttl_ms(self) -> int:
        # A day past its end: a replica with a slow clock still finds the counter.
        return 0 if self.end == float("inf") else int((self.end - time.time() + 86_400) * 1000)


class Periods:
    """Calendar days and months in the configured zone, recomputed only when one ends."""

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self._cache: dict[str, Period] = {}

    def current(self, kind: str) -> Period:
        p = self._cache.get(kind)
        if p is None or time.time() >= p.end:
            p = self._cache[kind] = self._compute(kind)
        return p

    def _compute(self, kind: str, today: date | None = None) -> Period:
        if kind == "total":
            return Period("total", None, float("inf"))
        today = today or datetime.now(self.zone).date()
        if kind == "day":
            first, after = today, today + timedelta(days=1)
            label = today.strftime("%Y-%m-%d")
        else:
            first = today.replace(day=1)
            after = (first + timedelta(days=32)).replace(day=1)
            label = first.strftime("%Y-%m")
        # Midnights built from the calendar date in the zone (fold 0: where midnight repeats at the
        # end of summer time, the period starts at the first one), so DST changes inside a period
        # make it 23 or 25 hours long rather than shifting it.
        start = datetime(first.year, first.month, first.day, tzinfo=self.zone)
        end = datetime(after.year, after.month, after.day, tzinfo=self.zone)
        return Period(label, start.astimezone(UTC), end.timestamp())


@dataclass(frozen=True, slots=True)
class Rules:
    """One consistent reading of the store: replaced whole, never changed in place."""

    budgets: dict[str, BudgetRule]
    limits: dict[str, LimitRule]
    bases: dict[tuple[str, str], float]  # (scope, period id) -> spend in the database
    version: int  # grows with every reading: what was derived from an older one is stale

    def base(self, scope: str, period: Period) -> float:
        # Not read for this period: it began after the last reading, and nothing was spent in it then.
        return self.bases.get((scope, period.id), 0.0)


class Book:
    def __init__(self, store: Store, zone: str = "UTC") -> None:
        self.store = store
        self.periods = Periods(zone)
        self.rules = Rules({}, {}, {}, 0)

    def load(self) -> None:
        """Read rules and spend: at start, whenever the directory generation moves, and every
        minute (so a counter Redis lost is re-seeded from a recent figure)."""
        with self.store.engine.connect() as conn:
            budgets, limits = load_budgets(conn), load_limits(conn)
            bases = {}
            for scope, rule in budgets.items():
                period = self.periods.current(rule.period)
                bases[(scope, period.id)] = spent_since(conn, scope, period.start)
        self.rules = Rules(budgets, limits, bases, self.rules.version + 1)

    async def refresh_forever(self, every: float = 60.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self.load)
            except Exception:
                log.exception("could not read budgets and limits; keeping those read before")


def spent_since(conn: sa.Connection, scope: str, since: datetime | None) -> float:
    """What the usage table says a scope spent since a time (all time if None)."""
    parsed = parse_scope(scope)  # stored scopes were checked when they were set
    q = sa.select(sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0))
    cond: list[Any] = []
    if parsed.kind == "key":
        family = sa.select(api_keys.c.id).where(sa.or_(api_keys.c.lineage == parsed.name,
                                                       api_keys.c.id == parsed.name))
        cond.append(usage.c.key_id.in_(family))
    else:
        cond.append(usage.c.tenant_id == parsed.tenant)
        if parsed.kind == "user":
            cond.append(usage.c.user_id == parsed.name)
        elif parsed.kind == "team":
            cond.append(usage.c.team == parsed.name)
    if since is not None:
        cond.append(usage.c.minute >= since)
    return float(conn.execute(q.where(*cond)).scalar_one())
