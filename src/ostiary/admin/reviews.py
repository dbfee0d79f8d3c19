"""Admin endpoints for guardrail reviews: list what waits, read one, approve or deny it.

A tenant admin reviews its own tenant's requests (another tenant's review answers 404); the
decision is recorded as an administrative event with the reviewer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import tenant_filter
from ostiary.admin.routing import Param, Request, Route
from ostiary.errors import InvalidRequest

if TYPE_CHECKING:
    from ostiary.admin.api import Services

STATUSES = ("pending", "approved", "denied", "expired")


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    note: str = ""


async def list_reviews(svc: Services, req: Request) -> tuple[int, Any]:
    status = req.query.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
    rows = await asyncio.to_thread(svc.reviews.list, tenant_filter(req), status)
    return 200, {"object": "list", "data": rows}


async def get_review(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, await asyncio.to_thread(svc.reviews.get, req.params["review_id"], req.within)


async def _decide(svc: Services, req: Request, approve: bool) -> tuple[int, Any]:
    d = req.decode(Decision)
    return 200, await asyncio.to_thread(svc.reviews.decide, req.params["review_id"], approve, req.actor,
                                        req.within, d.note)


async def approve(svc: Services, req: Request) -> tuple[int, Any]:
    return await _decide(svc, req, True)


async def deny(svc: Services, req: Request) -> tuple[int, Any]:
    return await _decide(svc, req, False)


ROUTES = (
    Route("GET", "/reviews", list_reviews, "Requests held for review by a guardrail policy, newest first",
          query=(Param("status", f"only this status: {', '.join(STATUSES)}"),
                 Param("tenant", "only this tenant (an admin's default: every tenant; anyone else: its own)")),
          returns="reviews: id, tenant, principal, request_id, route, policy, scanner, entities, excerpt, status"),
    Route("GET", "/reviews/{review_id}", get_review, "Read one review", returns="the review"),
    Route("POST", "/reviews/{review_id}/approve", approve, "Let the held request go on", body=Decision,
          returns="the review", errors=(400, 401, 403, 404, 409)),
    Route("POST", "/reviews/{review_id}/deny", deny, "Refuse the held request (403 to its caller)", body=Decision,
          returns="the review", errors=(400, 401, 403, 404, 409)),
)
