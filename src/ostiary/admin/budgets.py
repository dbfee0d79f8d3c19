"""Admin endpoints for budgets and rate-limit overrides: /admin/v1/budgets and /admin/v1/limits.

A rule applies to a scope (`tenant:acme`, `team:acme/risk`, `user:acme/alice`, `key:ost-...`),
given URL-encoded as the last part of the path. The ASGI server decodes the path once (so
`user%3Aacme%2Falice` arrives as `user:acme/alice`, slash included); it is not decoded again, which
would let `%25` smuggle in a second round of escapes. A key scope is answered under the key's
lineage, which every rotation successor shares.
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import require_admin, tenant_filter
from ostiary.admin.routing import Param, Request, Route
from ostiary.limits.settings import (
    DEFAULT_THRESHOLDS,
    BudgetRule,
    LimitRule,
    NotFoundError,
    parse_scope,
    prefixed,
)

if TYPE_CHECKING:
    from ostiary.admin.api import Services


class BudgetBody(msgspec.Struct, forbid_unknown_fields=True):
    """A spending cap: amount_usd (> 0) per period (day or month: calendar periods in the configured
    budgets.timezone; total: forever); notifications fire at the thresholds, in percent of the
    amount (1 to 100)."""

    amount_usd: float
    period: str
    thresholds: list[int] = msgspec.field(default_factory=lambda: list(DEFAULT_THRESHOLDS))


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True):
    """Rate limits replacing the configured default for one scope; null leaves that kind unlimited.
    At least one must be set; each is a whole number >= 1."""

    rpm: int | None = None
    tpm: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    concurrent: int | None = None


def budget_rule(body: BudgetBody, prefix: str | None = None) -> BudgetRule:
    with prefixed(prefix) if prefix else nullcontext():
        return BudgetRule(amount_usd=body.amount_usd, period=body.period, thresholds=tuple(body.thresholds))


def limit_rule(body: LimitsBody, prefix: str | None = None) -> LimitRule:
    with prefixed(prefix) if prefix else nullcontext():
        return LimitRule(rpm=body.rpm, tpm=body.tpm, input_tpm=body.input_tpm, output_tpm=body.output_tpm,
                         concurrent=body.concurrent)


def _scope(req: Request, *, writing: bool) -> str:
    """The scope in the path. Outside the caller's tenant it is not found (settings.resolve says so,
    in the same words as for a missing tenant or key); a tenant admin may not change the cap of its
    tenant itself."""
    text = req.params["scope"]
    scope = parse_scope(text)
    if writing and scope.kind == "tenant" and req.within is not None:
        if scope.tenant != req.within:
            raise NotFoundError(f"no tenant {scope.tenant!r}", param="scope")
        require_admin(req, "set or delete a tenant's own budget or limits")
    return text


async def list_budgets(svc: Services, req: Request) -> tuple[int, Any]:
    rows = await asyncio.to_thread(svc.settings.list_budgets, tenant_filter(req))
    return 200, {"object": "list", "data": [b.public() for b in rows]}


async def get_budget(svc: Services, req: Request) -> tuple[int, Any]:
    budget = await asyncio.to_thread(svc.settings.get_budget, _scope(req, writing=False), req.within)
    return 200, budget.public()


async def put_budget(svc: Services, req: Request) -> tuple[int, Any]:
    scope = _scope(req, writing=True)
    rule = budget_rule(req.decode(BudgetBody))
    budget = await asyncio.to_thread(svc.settings.set_budget, scope, rule, actor=req.actor, within=req.within)
    return 200, budget.public()


async def delete_budget(svc: Services, req: Request) -> tuple[int, Any]:
    scope = _scope(req, writing=True)
    old = await asyncio.to_thread(svc.settings.delete_budget, scope, actor=req.actor, within=req.within)
    return 200, {**old.public(), "deleted": True}


async def list_limits(svc: Services, req: Request) -> tuple[int, Any]:
    rows = await asyncio.to_thread(svc.settings.list_limits, tenant_filter(req))
    return 200, {"object": "list", "data": [x.public() for x in rows]}


async def get_limits(svc: Services, req: Request) -> tuple[int, Any]:
    limits = await asyncio.to_thread(svc.settings.get_limits, _scope(req, writing=False), req.within)
    return 200, limits.public()


async def put_limits(svc: Services, req: Request) -> tuple[int, Any]:
    scope = _scope(req, writing=True)
    rule = limit_rule(req.decode(LimitsBody))
    limits = await asyncio.to_thread(svc.settings.set_limits, scope, rule, actor=req.actor, within=req.within)
    return 200, limits.public()


async def delete_limits(svc: Services, req: Request) -> tuple[int, Any]:
    scope = _scope(req, writing=True)
    old = await asyncio.to_thread(svc.settings.delete_limits, scope, actor=req.actor, within=req.within)
    return 200, {**old.public(), "deleted": True}


_TENANT = Param("tenant", "only this tenant (an admin's default: every tenant; anyone else: its own)")
_SCOPE_HELP = ("scope: tenant:<tenant>, team:<tenant>/<team>, user:<tenant>/<user> or key:<key id>, "
               "URL-encoded; a tenant scope is written by an admin only")

ROUTES = (
    Route("GET", "/budgets", list_budgets, "List budgets", query=(_TENANT,), returns="budgets"),
    Route("GET", "/budgets/{scope*}", get_budget, "Read the budget of a scope", returns="the budget"),
    Route("PUT", "/budgets/{scope*}", put_budget, "Set the budget of a scope (" + _SCOPE_HELP + ")",
          body=BudgetBody, returns="the budget as stored (a key scope names the key's lineage)"),
    Route("DELETE", "/budgets/{scope*}", delete_budget, "Remove the budget of a scope",
          returns="the removed budget"),
    Route("GET", "/limits", list_limits, "List rate-limit overrides", query=(_TENANT,), returns="limit overrides"),
    Route("GET", "/limits/{scope*}", get_limits, "Read the rate limits of a scope", returns="the limits"),
    Route("PUT", "/limits/{scope*}", put_limits, "Set the rate limits of a scope (" + _SCOPE_HELP + ")",
          body=LimitsBody, returns="the limits as stored (a key scope names the key's lineage)"),
    Route("DELETE", "/limits/{scope*}", delete_limits, "Remove the rate limits of a scope (back to the default)",
          returns="the removed limits"),
)
