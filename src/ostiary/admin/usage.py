"""Admin endpoints that read history: /admin/v1/usage (sums of the usage aggregates) and
/admin/v1/events (who changed what). Auditors may call these two, for their own tenant only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ostiary.admin.access import tenant_filter
from ostiary.admin.routing import READERS, Param, Request, Route, parse_int, parse_time
from ostiary.limits.reports import GROUPS, report
from ostiary.store.events import MAX_LIST, list_events

if TYPE_CHECKING:
    from ostiary.admin.api import Services

_TENANT = Param("tenant", "only this tenant (an admin's default: every tenant; anyone else: its own)")
_SINCE = Param("since", "from this UTC date (2026-11-01) or ISO 8601 time, inclusive")


async def usage(svc: Services, req: Request) -> tuple[int, Any]:
    raw = req.query.get("group_by", "")
    group_by = [g.strip() for g in raw.split(",") if g.strip()]
    since = parse_time(req.query.get("since"), "since")
    until = parse_time(req.query.get("until"), "until")
    tenant = tenant_filter(req)
    rows = await asyncio.to_thread(report, svc.store, group_by, since, until, tenant)
    return 200, {"object": "list", "group_by": group_by, "since": since and since.isoformat(),
                 "until": until and until.isoformat(), "data": rows}


async def events(svc: Services, req: Request) -> tuple[int, Any]:
    since = parse_time(req.query.get("since"), "since")
    limit = parse_int(req.query.get("limit"), "limit", low=1, high=MAX_LIST, default=100)
    before = parse_int(req.query.get("before"), "before", low=1, high=2**63 - 1)
    assert limit is not None
    rows = await asyncio.to_thread(list_events, svc.store, tenant_filter(req), since, limit, before)
    # A full page may have more behind it: `before` this id fetches the next (older) page.
    more = rows[-1].id if len(rows) == limit else None
    return 200, {"object": "list", "data": [e.public() for e in rows], "next_before": more}


ROUTES = (
    Route("GET", "/usage", usage, "Usage and cost, summed and grouped", roles=READERS, query=(
        Param("group_by", f"comma-separated, any of: {', '.join(GROUPS)} (none: one row of totals)"),
        _SINCE,
        Param("until", "up to this UTC date or ISO 8601 time, exclusive"),
        _TENANT,
    ), returns="one row per group: the group columns, requests, errors, input_tokens, output_tokens, "
               "cached_tokens, cost_usd"),
    Route("GET", "/events", events, "Administrative changes, newest first", roles=READERS, query=(
        _TENANT,
        _SINCE,
        Param("limit", f"at most this many (1 to {MAX_LIST}, default 100)", {"type": "integer"}),
        Param("before", "only events with a smaller id (the `next_before` of the previous page)",
              {"type": "integer"}),
    ), returns="events: id, at, actor, actor_tenant, action, tenant, target, details"),
)
