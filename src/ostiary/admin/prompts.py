"""Admin endpoints for the prompt registry: read (every admin role), create versions and move labels
(admins: prompts are shared by every tenant)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import require_admin
from ostiary.admin.routing import READERS, Request, Route
from ostiary.llmops.prompts import Template

if TYPE_CHECKING:
    from ostiary.admin.api import Services


class MoveLabel(msgspec.Struct, forbid_unknown_fields=True):
    """force: move a protected label without a passing evaluation run of the version (recorded as such)."""

    version: int
    force: bool = False


async def list_prompts(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, {"object": "list", "data": await asyncio.to_thread(svc.prompts.list)}


async def get_prompt(svc: Services, req: Request) -> tuple[int, Any]:
    await asyncio.to_thread(svc.prompts.load)
    version, label = svc.prompts.snapshot.resolve(req.params["ref"])
    return 200, {**version.public(), "label": label}


async def create_version(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "create prompt versions")
    template = req.decode(Template)
    version = await asyncio.to_thread(svc.prompts.create, req.params["name"], template, req.actor)
    return 201, version.public()


async def move_label(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "move prompt labels")
    body = req.decode(MoveLabel)
    return 200, await asyncio.to_thread(svc.prompts.label, req.params["name"], req.params["label"], body.version,
                                        req.actor, body.force)


ROUTES = (
    Route("GET", "/prompts", list_prompts, "Prompts with their latest version and labels", roles=READERS,
          returns="name, versions, labels"),
    Route("GET", "/prompts/{ref}", get_prompt, "One version: NAME (production), NAME@LABEL or NAME@VERSION",
          roles=READERS, returns="the version: template, digest, creator"),
    Route("POST", "/prompts/{name}/versions", create_version, "Add a version (immutable)", body=Template,
          status=201, returns="the new version"),
    Route("PUT", "/prompts/{name}/labels/{label}", move_label, "Point a label at a version (deploy or roll back)",
          body=MoveLabel, returns="name, label, version, previous"),
)
