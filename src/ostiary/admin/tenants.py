"""Admin endpoints for tenants and users: /admin/v1/tenants and /admin/v1/users.

Only an admin creates tenants; a tenant admin reads and renames its own. Users belong to one tenant
and are addressed as /users/{tenant}/{id}; a tenant admin manages the users of its tenant but can
neither make anyone an admin nor change or delete a user who is one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import own_tenant, require_admin, tenant_filter
from ostiary.admin.routing import Param, Request, Route
from ostiary.identity.directory import KEEP

if TYPE_CHECKING:
    from ostiary.admin.api import Services


class CreateTenant(msgspec.Struct, forbid_unknown_fields=True):
    """id: 1 to 64 characters a-z, 0-9, '_' and '-', starting with a letter or digit (it cannot
    change later); name: how people call it (default: the id)."""

    id: str
    name: str | None = None


class UpdateTenant(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class CreateUser(msgspec.Struct, forbid_unknown_fields=True):
    """A person or service of a tenant (default: the caller's). id: 1 to 200 characters without '/'
    (often the e-mail address or the identity provider's subject); keys naming the user count for
    its team's budget."""

    id: str
    tenant: str | None = None
    name: str = ""
    team: str | None = None
    role: str = "developer"


class UpdateUser(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields present change; `"team": null` removes the user from its team."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    team: str | None | msgspec.UnsetType = msgspec.UNSET
    role: str | msgspec.UnsetType = msgspec.UNSET


async def list_tenants(svc: Services, req: Request) -> tuple[int, Any]:
    rows = await asyncio.to_thread(svc.directory.list_tenants, req.within)
    return 200, {"object": "list", "data": [t.public() for t in rows]}


async def create_tenant(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "create tenants")
    body = req.decode(CreateTenant)
    tenant = await asyncio.to_thread(svc.directory.create_tenant, body.id, body.name, actor=req.actor)
    return 201, tenant.public()


async def get_tenant(svc: Services, req: Request) -> tuple[int, Any]:
    tenant = await asyncio.to_thread(svc.directory.get_tenant, req.params["tenant_id"], req.within)
    return 200, tenant.public()


async def update_tenant(svc: Services, req: Request) -> tuple[int, Any]:
    body = req.decode(UpdateTenant)
    tenant = await asyncio.to_thread(svc.directory.rename_tenant, req.params["tenant_id"], body.name,
                                     actor=req.actor, within=req.within)
    return 200, tenant.public()


async def list_users(svc: Services, req: Request) -> tuple[int, Any]:
    rows = await asyncio.to_thread(svc.directory.list_users, tenant_filter(req))
    return 200, {"object": "list", "data": [u.public() for u in rows]}


async def create_user(svc: Services, req: Request) -> tuple[int, Any]:
    body = req.decode(CreateUser)
    tenant = own_tenant(req, body.tenant or req.principal.tenant)
    if body.role == "admin":
        require_admin(req, "make a user admin")
    user = await asyncio.to_thread(svc.directory.create_user, tenant, body.id, name=body.name, team=body.team,
                                   role=body.role, actor=req.actor, within=req.within)
    return 201, user.public()


async def get_user(svc: Services, req: Request) -> tuple[int, Any]:
    user = await asyncio.to_thread(svc.directory.get_user, req.params["tenant"], req.params["user_id"], req.within)
    return 200, user.public()


async def update_user(svc: Services, req: Request) -> tuple[int, Any]:
    body = req.decode(UpdateUser)
    if body.role == "admin":
        require_admin(req, "make a user admin")
    user = await asyncio.to_thread(
        svc.directory.update_user, req.params["tenant"], req.params["user_id"],
        name=_keep(body.name), team=_keep(body.team), role=_keep(body.role),
        actor=req.actor, within=req.within, keep_admins=req.principal.role != "admin")
    return 200, user.public()


async def delete_user(svc: Services, req: Request) -> tuple[int, Any]:
    old = await asyncio.to_thread(svc.directory.delete_user, req.params["tenant"], req.params["user_id"],
                                  actor=req.actor, within=req.within, keep_admins=req.principal.role != "admin")
    return 200, {**old.public(), "deleted": True}


def _keep(value: Any) -> Any:
    return KEEP if value is msgspec.UNSET else value


ROUTES = (
    Route("GET", "/tenants", list_tenants, "List tenants (a tenant admin sees its own)", returns="tenants"),
    Route("POST", "/tenants", create_tenant, "Create a tenant (admin only)", body=CreateTenant, status=201,
          returns="the tenant", errors=(400, 401, 403, 409)),
    Route("GET", "/tenants/{tenant_id}", get_tenant, "Read a tenant", returns="the tenant"),
    Route("PATCH", "/tenants/{tenant_id}", update_tenant, "Rename a tenant", body=UpdateTenant,
          returns="the tenant"),
    Route("GET", "/users", list_users, "List users",
          query=(Param("tenant", "only this tenant (an admin's default: every tenant; anyone else: its own)"),),
          returns="users"),
    Route("POST", "/users", create_user, "Create a user", body=CreateUser, status=201, returns="the user",
          errors=(400, 401, 403, 404, 409)),
    Route("GET", "/users/{tenant}/{user_id}", get_user, "Read a user", returns="the user"),
    Route("PATCH", "/users/{tenant}/{user_id}", update_user, "Change a user's name, team or role",
          body=UpdateUser, returns="the user"),
    Route("DELETE", "/users/{tenant}/{user_id}", delete_user, "Delete a user (its keys stay valid)",
          returns="the deleted user"),
)
