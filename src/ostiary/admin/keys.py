"""Admin endpoints for virtual API keys: /admin/v1/keys (list, issue, read, revoke, rotate).

A key's secret is in the answer to its creation (and rotation) only; afterwards only its id, which
is not a credential, is ever shown. A key may be issued with its own rate limits and budget; they are
stored under its lineage in the transaction that creates it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import own_tenant, require_admin, tenant_filter
from ostiary.admin.budgets import BudgetBody, LimitsBody, budget_rule, limit_rule
from ostiary.admin.routing import Param, Request, Route
from ostiary.errors import InvalidRequest, NotFound
from ostiary.identity.keys import KeyAdminError, KeyRecord

if TYPE_CHECKING:
    from ostiary.admin.api import Services

_MAX_SECONDS = 100 * 366 * 24 * 3600  # a century: beyond that a datetime would overflow


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    """A new key. tenant defaults to the caller's; limits and budget, when given, apply to this key
    and its rotation successors."""

    tenant: str | None = None
    user: str | None = None
    role: str = "developer"
    scopes: list[str] = msgspec.field(default_factory=lambda: ["chat", "embeddings"])
    models: list[str] | None = None
    clearance: str = "internal"
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    name: str = ""
    expires_in_seconds: int | None = None
    limits: LimitsBody | None = None
    budget: BudgetBody | None = None


class RotateKey(msgspec.Struct, forbid_unknown_fields=True):
    """How long the old key keeps working beside its successor."""

    grace_seconds: int = 3600


async def list_keys(svc: Services, req: Request) -> tuple[int, Any]:
    records = await asyncio.to_thread(svc.keys.list, tenant_filter(req))
    return 200, {"object": "list", "data": [r.public() for r in records]}


async def create_key(svc: Services, req: Request) -> tuple[int, Any]:
    body = req.decode(CreateKey)
    tenant = own_tenant(req, body.tenant or req.principal.tenant)
    if body.role == "admin":
        require_admin(req, "issue admin keys")
    if body.expires_in_seconds is not None and not 0 < body.expires_in_seconds <= _MAX_SECONDS:
        raise InvalidRequest(f"expires_in_seconds must be positive and at most {_MAX_SECONDS}",
                             param="expires_in_seconds")
    expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    limits = limit_rule(body.limits, "limits") if body.limits is not None else None
    budget = budget_rule(body.budget, "budget") if body.budget is not None else None

    def issue() -> tuple[str, KeyRecord]:
        # Through the API a key goes to an existing tenant only (the command line bootstraps new
        # ones): a misspelt tenant is an error, not a new tenant.
        svc.directory.get_tenant(tenant)
        return svc.keys.create(tenant=tenant, user=body.user, role=body.role, scopes=body.scopes,
                               models=body.models, clearance=body.clearance, tags=body.tags, name=body.name,
                               expires_in=expires, limits=limits, budget=budget, actor=req.actor)

    key, rec = await asyncio.to_thread(issue)
    extra = {"limits": None if limits is None else limits.public(),
             "budget": None if budget is None else budget.public()}
    return 201, {"key": key, **rec.public(), **extra}


async def get_key(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, (await _visible(svc, req)).public()


async def revoke_key(svc: Services, req: Request) -> tuple[int, Any]:
    rec = await _manageable(svc, req)
    return 200, (await asyncio.to_thread(svc.keys.revoke, rec.id, actor=req.actor)).public()


async def rotate_key(svc: Services, req: Request) -> tuple[int, Any]:
    rec = await _manageable(svc, req)
    body = req.decode(RotateKey)
    if not 0 <= body.grace_seconds <= _MAX_SECONDS:
        raise InvalidRequest(f"grace_seconds must not be negative nor above {_MAX_SECONDS}", param="grace_seconds")
    key, new = await asyncio.to_thread(svc.keys.rotate, rec.id, timedelta(seconds=body.grace_seconds),
                                       actor=req.actor)
    return 201, {"key": key, **new.public()}


async def _visible(svc: Services, req: Request) -> KeyRecord:
    # Another tenant's key answers exactly like a missing one.
    key_id = req.params["key_id"]
    missing = NotFound(f"No key {key_id!r}.", code="key_not_found", param="key_id")
    try:
        rec: KeyRecord = await asyncio.to_thread(svc.keys.get, key_id)
    except KeyAdminError:
        raise missing from None
    if req.within is not None and rec.tenant != req.within:
        raise missing
    return rec


async def _manageable(svc: Services, req: Request) -> KeyRecord:
    rec = await _visible(svc, req)
    if rec.role == "admin":
        # Rotating an admin key hands out a new admin key: a tenant admin must not get one that way.
        require_admin(req, "revoke or rotate an admin key")
    return rec


ROUTES = (
    Route("GET", "/keys", list_keys, "List API keys (never their secrets)",
          query=(Param("tenant", "only this tenant (an admin's default: every tenant; anyone else: its own)"),),
          returns="keys"),
    Route("POST", "/keys", create_key, "Issue an API key, optionally with its own limits and budget",
          body=CreateKey, status=201, returns="the new key; `key` is shown this once", errors=(400, 401, 403, 404)),
    Route("GET", "/keys/{key_id}", get_key, "Read one key (never its secret)", returns="the key"),
    Route("POST", "/keys/{key_id}/revoke", revoke_key, "Revoke a key at once", returns="the key"),
    Route("POST", "/keys/{key_id}/rotate", rotate_key, "Issue a successor; the old key works for the grace period",
          body=RotateKey, status=201, returns="the successor; `key` is shown this once"),
)
