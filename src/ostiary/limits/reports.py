"""Usage reports: sums over the `usage` aggregate table, grouped by what the caller asks for.

The gateway appends one row per (minute, tenant, team, user, key, route, deployment) and flush; a
report is one GROUP BY over those rows, written in SQL that SQLite and PostgreSQL both run. Times
are UTC: `since` is inclusive, `until` exclusive, both compared with the row's minute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ostiary.store import Store
from ostiary.store.schema import usage

# What a report may group by, and the column behind each name.
GROUPS: dict[str, sa.Column[Any]] = {
    "tenant": usage.c.tenant_id,
    "team": usage.c.team,
    "user": usage.c.user_id,
    "key": usage.c.key_id,
    "model": usage.c.model,
    "deployment": usage.c.deployment,
    "day": usage.c.day,
}
MEASURES = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_usd")


class ReportError(ValueError):
    """A report that cannot be made as asked; the message says why, `param` names the parameter."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def report(store: Store, group_by: list[str], since: datetime | None = None, until: datetime | None = None,
           tenant: str | None = None) -> list[dict[str, Any]]:
    """One row per group: the group columns (in the order asked) and the sums of every measure,
    ordered by the group columns. No grouping gives one row of totals."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ReportError(f"cannot group by {', '.join(map(repr, unknown))}; use any of {', '.join(GROUPS)}",
                          param="group_by")
    if len(set(group_by)) != len(group_by):
        raise ReportError("group_by names a column twice", param="group_by")
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and until <= since:
        raise ReportError("until must be later than since", param="until")

    keys = [GROUPS[g].label(g) for g in group_by]
    # SUM over no rows is NULL; COALESCE makes an empty total read 0.
    sums = [sa.func.coalesce(sa.func.sum(usage.c[m]), 0).label(m) for m in MEASURES]
    q = sa.select(*keys, *sums)
    if tenant is not None:
        q = q.where(usage.c.tenant_id == tenant)
    if since is not None:
        q = q.where(usage.c.minute >= since)
    if until is not None:
        q = q.where(usage.c.minute < until)
    if group_by:
        columns = [GROUPS[g] for g in group_by]
        q = q.group_by(*columns).order_by(*columns)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    # PostgreSQL sums BIGINT into NUMERIC (Decimal): report plain numbers on both databases.
    return [{**{g: getattr(r, g) for g in group_by},
             **{m: int(getattr(r, m)) for m in MEASURES if m != "cost_usd"},
             "cost_usd": round(float(r.cost_usd), 9)} for r in rows]


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps times without their offset, so every bound is converted to UTC first.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
