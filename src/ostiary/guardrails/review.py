"""Human review: a request a policy escalates waits until a reviewer approves or denies it.

The review is a row in the store, so any replica's admin API can decide it and the replica holding
the request sees the decision (it polls the row every `POLL` seconds). A review nobody decides
within the policy's `review_timeout_seconds` expires and the request is refused. Decisions are
administrative events (review.approve, review.deny) recorded with the reviewer.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ostiary.store import Store
from ostiary.store.events import Actor, record_by
from ostiary.store.schema import reviews

POLL = 0.25
EXCERPT_CHARS = 4000


class ReviewError(ValueError):
    """A decision that cannot be made (unknown review, already decided); the message says why."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class Reviews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, *, tenant: str, principal: str, request_id: str, route: str, policy: str, version: str,
             scanner: str, segment: str, entities: dict[str, int], excerpt: str, user: str | None = None) -> str:
        rid = "rev-" + secrets.token_hex(8)
        with self.store.engine.begin() as conn:
            conn.execute(reviews.insert().values(
                id=rid, created_at=datetime.now(UTC), tenant_id=tenant[:64], principal=principal[:300],
                request_id=request_id[:200], route=route[:200], policy=policy[:200], policy_version=version,
                scanner=scanner, segment=segment, entities=entities, excerpt=excerpt[:EXCERPT_CHARS],
                status="pending", user_id=user[:200] if user else None))
        return rid

    def status(self, rid: str) -> str:
        with self.store.engine.connect() as conn:
            return str(conn.execute(sa.select(reviews.c.status).where(reviews.c.id == rid)).scalar_one())

    async def wait(self, rid: str, timeout: float) -> str:
        """The decision: approved, denied or (nobody decided in time) expired."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(self.status, rid)
            if status != "pending":
                return status
            await asyncio.sleep(POLL)
        return await asyncio.to_thread(self._expire, rid)

    def _expire(self, rid: str) -> str:
        with self.store.engine.begin() as conn:
            conn.execute(reviews.update().where(reviews.c.id == rid, reviews.c.status == "pending")
                         .values(status="expired", decided_at=datetime.now(UTC)))
            # A reviewer may have decided in the last moment: that decision stands.
            return str(conn.execute(sa.select(reviews.c.status).where(reviews.c.id == rid)).scalar_one())

    def decide(self, rid: str, approve: bool, actor: Actor, within: str | None, note: str = "") -> dict[str, Any]:
        status = "approved" if approve else "denied"
        with self.store.engine.begin() as conn:
            row = conn.execute(sa.select(reviews).where(reviews.c.id == rid)).first()
            if row is None or (within is not None and row.tenant_id != within):
                raise ReviewError(f"no review {rid!r}", missing=True)
            done = conn.execute(reviews.update().where(reviews.c.id == rid, reviews.c.status == "pending").values(
                status=status, decided_by=actor.subject, decided_at=datetime.now(UTC), note=note[:1000] or None))
            if done.rowcount != 1:
                raise ReviewError(f"review {rid} is already {row.status}")
            record_by(conn, actor, f"review.{'approve' if approve else 'deny'}", tenant=row.tenant_id, target=rid,
                      details={"request_id": row.request_id, "policy": row.policy, "scanner": row.scanner})
            return _public(conn.execute(sa.select(reviews).where(reviews.c.id == rid)).one())

    def get(self, rid: str, within: str | None) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(reviews).where(reviews.c.id == rid)).first()
        if row is None or (within is not None and row.tenant_id != within):
            raise ReviewError(f"no review {rid!r}", missing=True)
        return _public(row)

    def list(self, tenant: str | None, status: str | None) -> list[dict[str, Any]]:
        q = sa.select(reviews).order_by(reviews.c.created_at.desc()).limit(500)
        if tenant is not None:
            q = q.where(reviews.c.tenant_id == tenant)
        if status is not None:
            q = q.where(reviews.c.status == status)
        with self.store.engine.connect() as conn:
            return [_public(r) for r in conn.execute(q)]


def _public(row: Any) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return None if v is None else (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()

    return {"id": row.id, "created_at": iso(row.created_at), "tenant": row.tenant_id, "principal": row.principal,
            "request_id": row.request_id, "route": row.route, "policy": row.policy,
            "policy_version": row.policy_version, "scanner": row.scanner, "segment": row.segment,
            "entities": row.entities, "excerpt": row.excerpt, "status": row.status, "decided_by": row.decided_by,
            "decided_at": iso(row.decided_at), "note": row.note}
