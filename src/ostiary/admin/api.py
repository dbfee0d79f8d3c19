"""The admin REST API under /admin/v1: API keys for now (tenants, budgets and usage follow).

Framework-free: the server hands over (method, path, query, body, principal) and sends back what
`AdminAPI.handle` returns. Role rules: a key needs the `admin` scope; role `admin` manages every
tenant, role `tenant_admin` only its own (another tenant's keys answer 404, so their existence does
not leak). Database work runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import msgspec

from ostiary.errors import Forbidden, InvalidRequest, NotFound
from ostiary.identity.keys import KeyAdminError, KeyRecord, KeyService
from ostiary.identity.principal import Principal


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    tenant: str | None = None  # default: the caller's tenant
    user: str | None = None
    role: str = "developer"
    scopes: list[str] = msgspec.field(default_factory=lambda: ["chat", "embeddings"])
    models: list[str] | None = None
    clearance: str = "internal"
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    name: str = ""
    expires_in_seconds: int | None = None


class RotateKey(msgspec.Struct, forbid_unknown_fields=True):
    grace_seconds: int = 3600


class AdminAPI:
    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    async def handle(self, method: str, path: str, query: str, body: bytes,
                     principal: Principal) -> tuple[int, Any]:
        _require_admin(principal)
        parts = path.removeprefix("/admin/v1/").strip("/").split("/")
        if parts == ["keys"] and method == "GET":
            tenant = _tenant_param(query, principal)
            records = await asyncio.to_thread(self.keys.list, tenant)
            return 200, {"object": "list", "data": [r.public() for r in records]}
        if parts == ["keys"] and method == "POST":
            req = _decode(body, CreateKey)
            tenant = req.tenant or principal.tenant
            _check_tenant(principal, tenant)
            if req.role == "admin" and principal.role != "admin":
                raise Forbidden("Only an admin can issue admin keys.", code="role_not_allowed")
            if req.expires_in_seconds is not None and req.expires_in_seconds <= 0:
                raise InvalidRequest("expires_in_seconds must be positive", param="expires_in_seconds")
            expires = timedelta(seconds=req.expires_in_seconds) if req.expires_in_seconds else None
            key, rec = await self._run(self.keys.create, tenant=tenant, user=req.user, role=req.role,
                                       scopes=req.scopes, models=req.models, clearance=req.clearance,
                                       tags=req.tags, name=req.name, expires_in=expires)
            return 201, {"key": key, **rec.public()}
        if len(parts) == 3 and parts[0] == "keys" and method == "POST" and parts[2] in ("revoke", "rotate"):
            await self._owned(parts[1], principal)
            if parts[2] == "revoke":
                rec = await self._run(self.keys.revoke, parts[1])
                return 200, rec.public()
            rot = _decode(body or b"{}", RotateKey)
            if rot.grace_seconds < 0:
                raise InvalidRequest("grace_seconds must not be negative", param="grace_seconds")
            key, rec = await self._run(self.keys.rotate, parts[1], timedelta(seconds=rot.grace_seconds))
            return 201, {"key": key, **rec.public()}
        if parts == ["openapi.json"] and method == "GET":
            return 200, OPENAPI
        raise NotFound(f"No admin endpoint at {method} {path}.")

    async def _owned(self, key_id: str, principal: Principal) -> KeyRecord:
        # Another tenant's key answers exactly like a missing one.
        missing = NotFound(f"No key {key_id!r}.", code="key_not_found")
        try:
            rec: KeyRecord = await asyncio.to_thread(self.keys.get, key_id)
        except KeyAdminError:
            raise missing from None
        if principal.role != "admin" and rec.tenant != principal.tenant:
            raise missing
        return rec

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except KeyAdminError as e:
            raise InvalidRequest(str(e)) from None


def _require_admin(p: Principal) -> None:
    if "admin" not in p.scopes or p.role not in ("admin", "tenant_admin"):
        raise Forbidden("The admin API needs a key with the 'admin' scope and the role admin or tenant_admin.",
                        code="admin_required")


def _check_tenant(p: Principal, tenant: str) -> None:
    if p.role != "admin" and tenant != p.tenant:
        raise Forbidden("A tenant admin manages only its own tenant.", code="tenant_not_allowed")


def _tenant_param(query: str, p: Principal) -> str | None:
    asked = parse_qs(query).get("tenant", [None])[0]
    if p.role == "admin":
        return asked
    if asked is not None and asked != p.tenant:
        raise Forbidden("A tenant admin sees only its own tenant.", code="tenant_not_allowed")
    return p.tenant


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"invalid request: {e}") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e}", code="invalid_json") from None


def _openapi() -> dict[str, Any]:
    (create, rotate), components = msgspec.json.schema_components([CreateKey, RotateKey],
                                                                  ref_template="#/components/schemas/{name}")
    key_id = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    ok = {"200": {"description": "the key (never its secret)"}}
    new = {"201": {"description": "the new key; `key` is shown this once"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ostiary admin API", "version": "1"},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/admin/v1/keys": {
                "get": {"summary": "List API keys", "parameters": [
                    {"name": "tenant", "in": "query", "required": False, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "keys, without secrets"}}},
                "post": {"summary": "Issue an API key", "responses": new,
                         "requestBody": {"content": {"application/json": {"schema": create}}}},
            },
            "/admin/v1/keys/{key_id}/revoke": {"post": {"summary": "Revoke a key", "parameters": key_id,
                                                        "responses": ok}},
            "/admin/v1/keys/{key_id}/rotate": {"post": {
                "summary": "Issue a successor; the old key works for the grace period", "parameters": key_id,
                "requestBody": {"content": {"application/json": {"schema": rotate}}}, "responses": new}},
            "/admin/v1/openapi.json": {"get": {"summary": "This document", "responses": ok}},
        },
    }


OPENAPI = _openapi()
