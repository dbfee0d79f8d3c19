"""Tenants and their users, on the database: create, list, read, rename, update, delete.

A tenant is the unit of isolation (keys, users, budgets, usage and events all belong to one). A user
is a person or service of a tenant with a role and, optionally, a team; keys that name the user
count against the team's budget. Every change is recorded as an admin event in its own transaction,
and changes to users move the generation counter, because the request path reads them from memory.
Synchronous: callers on the event loop run it in a thread.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ostiary.identity.principal import ROLES
from ostiary.store import Store, bump_generation
from ostiary.store.events import Actor, record_by
from ostiary.store.schema import tenants, users

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# User ids and team names come from people and from identity providers' claims ("alice@acme.com",
# "auth0|5f3c", "Risk Analytics"), so they are free text, minus what would break a scope name
# ("user:acme/alice") or a URL path segment, and minus invisible characters.
_NAME = re.compile(r"[^\s/\x00-\x1f\x7f](?:[^/\x00-\x1f\x7f]{0,198}[^\s/\x00-\x1f\x7f])?")


class DirectoryError(ValueError):
    """Bad input for a tenant or user; the message says what to change, `param` names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotFoundError(DirectoryError):
    """The tenant or user does not exist (or is not visible to the caller)."""


class ConflictError(DirectoryError):
    """The tenant or user exists already."""


class NotAllowedError(DirectoryError):
    """The caller may not make this change (a tenant admin touching an admin user)."""


class Keep(enum.Enum):
    """For updates: leave this field as it is (None would mean "clear it")."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class User:
    tenant: str
    id: str
    name: str
    team: str | None
    role: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "id": self.id, "name": self.name, "team": self.team, "role": self.role,
                "created_at": self.created_at.isoformat()}


def check_tenant_id(value: str, param: str = "id") -> str:
    if not isinstance(value, str) or not TENANT_ID.fullmatch(value):
        raise DirectoryError(f"tenant id {value!r} is invalid: use 1 to 64 characters a-z, 0-9, '_' and '-', "
                             "starting with a letter or digit", param=param)
    return value


def check_name(value: str, what: str, param: str) -> str:
    """A user id or team name: 1 to 200 characters, no '/', no control characters, no outer spaces."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise DirectoryError(f"{what} {value!r} is invalid: use 1 to 200 characters without '/', control "
                             "characters or leading and trailing spaces", param=param)
    return value


def _check_display_name(value: str, param: str = "name") -> str:
    if not isinstance(value, str) or len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise DirectoryError("name must be at most 200 characters without control characters", param=param)
    return value.strip()


def _check_role(value: str) -> str:
    if value not in ROLES:
        raise DirectoryError(f"role {value!r} is unknown; use one of {', '.join(ROLES)}", param="role")
    return value


class Directory:
    """Tenants and users on a store. `within`, where a method takes it, restricts the operation to
    one tenant: anything outside it is reported exactly as missing, so its existence does not leak."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- tenants ---------------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str, name: str | None = None, *, actor: Actor) -> Tenant:
        check_tenant_id(tenant_id)
        shown = _check_display_name(name) if name is not None else tenant_id
        now = datetime.now(UTC)
        with _conflicts_as(f"tenant {tenant_id!r} exists already", "id"), self.store.engine.begin() as conn:
            if _tenant_row(conn, tenant_id) is not None:
                raise ConflictError(f"tenant {tenant_id!r} exists already", param="id")
            conn.execute(tenants.insert().values(id=tenant_id, name=shown or tenant_id, created_at=now))
            record_by(conn, actor, "tenant.create", tenant=tenant_id, target=f"tenant:{tenant_id}",
                      details={"name": shown or tenant_id})
        return Tenant(tenant_id, shown or tenant_id, now)

    def list_tenants(self, within: str | None = None) -> list[Tenant]:
        q = sa.select(tenants).order_by(tenants.c.id)
        if within is not None:
            q = q.where(tenants.c.id == within)
        with self.store.engine.connect() as conn:
            return [_tenant(r) for r in conn.execute(q)]

    def get_tenant(self, tenant_id: str, within: str | None = None) -> Tenant:
        with self.store.engine.connect() as conn:
            return _tenant(self._visible_tenant(conn, tenant_id, within))

    def rename_tenant(self, tenant_id: str, name: str, *, actor: Actor, within: str | None = None) -> Tenant:
        shown = _check_display_name(name)
        if not shown:
            raise DirectoryError("name must not be empty", param="name")
        with self.store.engine.begin() as conn:
            old = self._visible_tenant(conn, tenant_id, within)
            if old.name != shown:
                conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(name=shown))
                record_by(conn, actor, "tenant.update", tenant=tenant_id, target=f"tenant:{tenant_id}",
                          details={"name": {"old": old.name, "new": shown}})
            return _tenant(self._visible_tenant(conn, tenant_id, within))

    # -- users -----------------------------------------------------------------------------------

    def create_user(self, tenant: str, user_id: str, *, name: str = "", team: str | None = None,
                    role: str = "developer", actor: Actor, within: str | None = None) -> User:
        check_name(user_id, "user id", "id")
        shown = _check_display_name(name)
        if team is not None:
            check_name(team, "team", "team")
        _check_role(role)
        now = datetime.now(UTC)
        with _conflicts_as(f"user {user_id!r} exists already in tenant {tenant!r}", "id"), \
                self.store.engine.begin() as conn:
            self._visible_tenant(conn, tenant, within)
            if _user_row(conn, tenant, user_id) is not None:
                raise ConflictError(f"user {user_id!r} exists already in tenant {tenant!r}", param="id")
            conn.execute(users.insert().values(tenant_id=tenant, id=user_id, name=shown, team=team, role=role,
                                               created_at=now))
            record_by(conn, actor, "user.create", tenant=tenant, target=f"user:{tenant}/{user_id}",
                      details={"name": shown, "team": team, "role": role})
            bump_generation(conn)
        return User(tenant, user_id, shown, team, role, now)

    def list_users(self, tenant: str | None = None) -> list[User]:
        q = sa.select(users).order_by(users.c.tenant_id, users.c.id)
        if tenant is not None:
            q = q.where(users.c.tenant_id == tenant)
        with self.store.engine.connect() as conn:
            return [_user(r) for r in conn.execute(q)]

    def get_user(self, tenant: str, user_id: str, within: str | None = None) -> User:
        with self.store.engine.connect() as conn:
            return _user(self._visible_user(conn, tenant, user_id, within))

    def update_user(self, tenant: str, user_id: str, *, name: str | Keep = KEEP, team: str | None | Keep = KEEP,
                    role: str | Keep = KEEP, actor: Actor, within: str | None = None,
                    keep_admins: bool = False) -> User:
        """Change what is given; the event carries each changed field's old and new value. With
        `keep_admins`, a user who is an admin, or would become one, is refused (checked in the
        transaction of the change, so a concurrent promotion cannot slip through)."""
        new: dict[str, Any] = {}
        if not isinstance(name, Keep):
            new["name"] = _check_display_name(name)
        if not isinstance(team, Keep):
            new["team"] = None if team is None else check_name(team, "team", "team")
        if not isinstance(role, Keep):
            new["role"] = _check_role(role)
        with self.store.engine.begin() as conn:
            old = self._visible_user(conn, tenant, user_id, within, lock=True)
            if keep_admins and "admin" in (old.role, new.get("role")):
                raise NotAllowedError("only an admin can change an admin user or make a user admin", param="role")
            changes = {k: {"old": getattr(old, k), "new": v} for k, v in new.items() if getattr(old, k) != v}
            if changes:
                conn.execute(users.update().where(users.c.tenant_id == tenant, users.c.id == user_id)
                             .values(**{k: c["new"] for k, c in changes.items()}))
                record_by(conn, actor, "user.update", tenant=tenant, target=f"user:{tenant}/{user_id}",
                          details=changes)
                bump_generation(conn)
            return _user(self._visible_user(conn, tenant, user_id, within))

    def delete_user(self, tenant: str, user_id: str, *, actor: Actor, within: str | None = None,
                    keep_admins: bool = False) -> User:
        """Remove the user record. Its keys stay valid (revoke them separately); they no longer
        count for the user's team. With `keep_admins`, an admin user is refused."""
        with self.store.engine.begin() as conn:
            old = _user(self._visible_user(conn, tenant, user_id, within, lock=True))
            if keep_admins and old.role == "admin":
                raise NotAllowedError("only an admin can delete an admin user", param="id")
            conn.execute(users.delete().where(users.c.tenant_id == tenant, users.c.id == user_id))
            record_by(conn, actor, "user.delete", tenant=tenant, target=f"user:{tenant}/{user_id}",
                      details={"name": old.name, "team": old.team, "role": old.role})
            bump_generation(conn)
        return old

    # -- visibility ------------------------------------------------------------------------------

    def _visible_tenant(self, conn: sa.Connection, tenant_id: str, within: str | None) -> Any:
        row = None if within is not None and tenant_id != within else _tenant_row(conn, tenant_id)
        if row is None:
            raise NotFoundError(f"no tenant {tenant_id!r}", param="tenant")
        return row

    def _visible_user(self, conn: sa.Connection, tenant: str, user_id: str, within: str | None,
                      lock: bool = False) -> Any:
        row = None if within is not None and tenant != within else _user_row(conn, tenant, user_id, lock)
        if row is None:
            raise NotFoundError(f"no user {user_id!r} in tenant {tenant!r}", param="id")
        return row


def tenant_exists(conn: sa.Connection, tenant_id: str) -> bool:
    return _tenant_row(conn, tenant_id) is not None


def _tenant_row(conn: sa.Connection, tenant_id: str) -> Any:
    return conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).first()


def _user_row(conn: sa.Connection, tenant: str, user_id: str, lock: bool = False) -> Any:
    q = sa.select(users).where(users.c.tenant_id == tenant, users.c.id == user_id)
    # PostgreSQL: lock the row, so what was checked (its role) is what is changed. SQLite has one
    # writer at a time and no row locks; SQLAlchemy leaves the clause out there.
    return conn.execute(q.with_for_update() if lock else q).first()


def _tenant(row: Any) -> Tenant:
    return Tenant(row.id, row.name, _utc(row.created_at))


def _user(row: Any) -> User:
    return User(row.tenant_id, row.id, row.name, row.team, row.role, _utc(row.created_at))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@contextmanager
def _conflicts_as(message: str, param: str) -> Iterator[None]:
    """Turn a unique-key violation (two creators racing past the existence check) into a conflict."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise ConflictError(message, param=param) from None
