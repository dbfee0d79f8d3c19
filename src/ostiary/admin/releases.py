"""Admin endpoints for progressive releases: list and read them with their analysis (every admin role);
create, start, pause, resume, promote and roll back (admins: releases change what every tenant gets)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import require_admin
from ostiary.admin.routing import READERS, Param, Request, Route
from ostiary.errors import InvalidRequest
from ostiary.llmops.releases import NewRelease

if TYPE_CHECKING:
    from ostiary.admin.api import Services

STATES = ("pending", "running", "paused", "promoted", "rolled_back")


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    """force: promote without a passing evaluation run of the candidate (recorded as such)."""

    reason: str | None = None
    force: bool = False


async def list_releases(svc: Services, req: Request) -> tuple[int, Any]:
    data = await asyncio.to_thread(svc.releases.recent, req.query.get("state"))
    await asyncio.to_thread(svc.releases.load)
    # The route and guardrail pointers promoted releases moved away from the config's values.
    return 200, {"object": "list", "data": data, "pointers": svc.releases.snapshot.pointers}


async def get_release(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, await asyncio.to_thread(svc.releases.report, req.params["id"])


async def create_release(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "create releases")
    new = req.decode(NewRelease)
    release = await asyncio.to_thread(svc.releases.create, new, req.actor)
    return 201, release.public()


async def decide(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "change releases")
    body = req.decode(Decision)
    if body.reason is not None and len(body.reason) > 500:
        raise InvalidRequest("reason must be at most 500 characters", param="reason")
    release = await asyncio.to_thread(svc.releases.act, req.params["id"], req.params["action"], req.actor,
                                      body.force, body.reason)
    return 200, release.public()


ROUTES = (
    Route("GET", "/releases", list_releases, "Releases, newest first, and the pointers promoted ones moved",
          roles=READERS,
          query=(Param("state", "only releases in this state",
                       {"type": "string", "enum": list(STATES)}),), returns="releases; pointers (key -> value)"),
    Route("POST", "/releases", create_release, "Create a release of a prompt label, a route's deployments or a "
          "route's guardrail policy (start: true begins its first step)", body=NewRelease, status=201,
          errors=(400, 401, 403, 404, 409), returns="the release"),
    Route("GET", "/releases/{id}", get_release, "One release, both arms' figures and its checks now",
          roles=READERS, returns="the release with its analysis"),
    Route("POST", "/releases/{id}/{action}", decide, "start, pause, resume, promote or rollback", body=Decision,
          errors=(400, 401, 403, 404, 409), returns="the release"),
)
