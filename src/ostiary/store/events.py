"""Administrative events: who changed what, written in the transaction of the change itself.

Every administrative write (keys, tenants, users, budgets, limits) calls `record` on the connection
that makes the change, so an event exists exactly when the change was committed. The audit trail
takes these rows over into its tamper-evident log later; this module only writes and reads them.
Details never hold secrets: not a key, not its hash (`record` refuses such fields outright).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ostiary.store import Store
from ostiary.store.schema import admin_events

MAX_LIST = 1000
# Top-level detail names that would carry a credential. A caller passing one is a bug, and a bug here
# would write a secret into a table that is meant to be exported, so it fails loudly instead. (Only the
# top level: nested values such as a key's tags are the administrator's own words.)
_SECRET_FIELDS = frozenset({"key", "hash", "secret", "token", "password", "api_key"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a principal's kind and subject (e.g. "key:ost-3kq9x2mf") and its tenant."""

    subject: str
    tenant: str | None


CLI = Actor("cli", None)
"""The command line: whoever can run it can read the database directly anyway."""


@dataclass(frozen=True, slots=True)
class AdminEvent:
    id: int
    at: datetime
    actor: str
    actor_tenant: str | None
    action: str
    tenant: str | None
    target: str
    details: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "actor_tenant": self.actor_tenant,
                "action": self.action, "tenant": self.tenant, "target": self.target, "details": self.details}


def record(conn: sa.Connection, *, actor: str, actor_tenant: str | None, action: str, tenant: str | None,
           target: str, details: dict[str, Any]) -> None:
    """Append one event inside the caller's transaction (it commits or rolls back with the change)."""
    leaked = {k for k in details if k.lower() in _SECRET_FIELDS}
    if leaked:
        raise ValueError(f"admin event {action} must not carry secret fields: {', '.join(sorted(leaked))}")
    conn.execute(admin_events.insert().values(
        at=datetime.now(UTC), actor=actor[:200], actor_tenant=actor_tenant, action=action, tenant_id=tenant,
        target=target[:300], details=details))


def record_by(conn: sa.Connection, who: Actor, action: str, *, tenant: str | None, target: str,
              details: dict[str, Any]) -> None:
    """`record` for an `Actor`: what the services call."""
    record(conn, actor=who.subject, actor_tenant=who.tenant, action=action, tenant=tenant, target=target,
           details=details)


def list_events(source: Store | sa.Connection, tenant: str | None = None, since: datetime | None = None,
                limit: int = 100, before: int | None = None) -> list[AdminEvent]:
    """Events newest first: of one tenant (or all), at or after `since`, with an id below `before`
    (the cursor for the next page: the smallest id of the previous one), at most `limit`."""
    if not 1 <= limit <= MAX_LIST:
        raise ValueError(f"limit must be between 1 and {MAX_LIST}")
    q = sa.select(admin_events).order_by(admin_events.c.id.desc()).limit(limit)
    if tenant is not None:
        q = q.where(admin_events.c.tenant_id == tenant)
    if since is not None:
        # SQLite stores times without their offset: always compare in UTC.
        q = q.where(admin_events.c.at >= _as_utc(since))
    if before is not None:
        q = q.where(admin_events.c.id < before)
    if isinstance(source, Store):
        with source.engine.connect() as conn:
            rows = conn.execute(q).all()
    else:
        rows = source.execute(q).all()
    return [AdminEvent(id=r.id, at=_as_utc(r.at), actor=r.actor, actor_tenant=r.actor_tenant, action=r.action,
                       tenant=r.tenant_id, target=r.target, details=dict(r.details)) for r in rows]


def _as_utc(value: datetime) -> datetime:
    # A naive time is UTC (SQLite returns them so); an aware one is converted.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
