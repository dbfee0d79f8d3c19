"""Virtual API keys: issued once, stored as a keyed hash, looked up in memory.

A key reads `ost-<id>.<secret>`; `ost-<id>` is its visible, non-secret name. The database keeps
HMAC-SHA256(secret, key) only, so a copy of the database does not yield usable keys. The request
path never queries the database: `KeyIndex` maps hashes to principals in memory and a background
task reloads it when the key generation counter moves (any replica's change), within
`identity.refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ostiary.config.schema import Config
from ostiary.identity.directory import DirectoryError, check_name, check_tenant_id
from ostiary.identity.principal import CLEARANCES, ROLES, SCOPES, Principal
from ostiary.limits.settings import BudgetRule, LimitRule, write_budget, write_limits
from ostiary.store import Store, bump_generation
from ostiary.store.events import CLI, Actor, record_by
from ostiary.store.schema import api_keys, meta, tenants, users

log = logging.getLogger("ostiary.identity")
_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: ids are read aloud and retyped


class KeyAdminError(ValueError):
    """A key operation that cannot be done (unknown key, bad attribute); the message says why."""


def key_secret(configured: bytes | None, data_dir: Path) -> bytes:
    """The HMAC secret: from the config, or (embedded default) a file created once, mode 0600."""
    if configured:
        return configured
    path = data_dir / "key-secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        value = secrets.token_bytes(32)
        f.write(value)
    return value


def hash_key(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as stored, without its secret."""

    id: str
    name: str
    tenant: str
    user: str | None
    role: str
    scopes: list[str]
    models: list[str] | None
    clearance: str
    tags: dict[str, str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None
    lineage: str  # the first key of the rotation chain (its own id unless it is a successor)

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self, team: str | None = None) -> Principal:
        return Principal(kind="key", subject=self.id, tenant=self.tenant, user=self.user, role=self.role, team=team,
                         scopes=frozenset(self.scopes), models=None if self.models is None else frozenset(self.models),
                         clearance=self.clearance, tags=dict(self.tags), lineage=self.lineage)

    def public(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"id": self.id, "name": self.name, "tenant": self.tenant, "user": self.user, "role": self.role,
                "scopes": self.scopes, "models": self.models, "clearance": self.clearance, "tags": self.tags,
                "created_at": _iso(self.created_at), "expires_at": _iso(self.expires_at),
                "revoked_at": _iso(self.revoked_at), "rotated_to": self.rotated_to, "lineage": self.lineage,
                "status": self.status(now)}


class KeyService:
    """Key administration on the database (CLI and admin API). Synchronous: callers on the event
    loop run it in a thread."""

    def __init__(self, store: Store, secret: bytes) -> None:
        self.store = store
        self.secret = secret

    @classmethod
    def open(cls, config: Config) -> KeyService:
        """The configured store (migrated) and hashing secret: what the gateway and the CLI share."""
        store = Store.open(config.database_url, config.server.data_dir)
        configured = config.identity.key_secret.get_secret_value().encode() if config.identity.key_secret else None
        return cls(store, key_secret(configured, config.server.data_dir))

    def get(self, key_id: str) -> KeyRecord:
        with self.store.engine.connect() as conn:
            return self._get(conn, key_id)

    def create(self, *, tenant: str, user: str | None = None, role: str = "developer",
               scopes: list[str] | None = None, models: list[str] | None = None, clearance: str = "internal",
               tags: dict[str, str] | None = None, name: str = "", expires_in: timedelta | None = None,
               limits: LimitRule | None = None, budget: BudgetRule | None = None, actor: Actor = CLI
               ) -> tuple[str, KeyRecord]:
        """Issue a key; optional rate limits and budget are stored under its lineage. The key, its
        rules and the admin events for all of them commit together or not at all."""
        scopes = scopes if scopes is not None else ["chat", "embeddings"]
        _check_attributes(tenant, role, scopes, clearance)
        try:
            if user is not None:
                check_name(user, "user", "user")
        except DirectoryError as e:
            raise KeyAdminError(str(e)) from None
        if len(name) > 200:
            raise KeyAdminError("name must be at most 200 characters")
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            key, record = self._insert(conn, now, actor, tenant=tenant, user=user, role=role, scopes=scopes,
                                       models=models, clearance=clearance, tags=tags or {}, name=name,
                                       expires_at=now + expires_in if expires_in else None)
            shown = record.public()
            record_by(conn, actor, "key.create", tenant=record.tenant, target=record.id,
                      details={k: shown[k] for k in ("name", "user", "role", "scopes", "models", "clearance", "tags",
                                                     "expires_at", "lineage")})
            if limits is not None:
                write_limits(conn, f"key:{record.id}", limits, actor=actor)
            if budget is not None:
                write_budget(conn, f"key:{record.id}", budget, actor=actor)
            bump_generation(conn)
        return key, record

    def _insert(self, conn: sa.Connection, now: datetime, actor: Actor, **attrs: Any) -> tuple[str, KeyRecord]:
        if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == attrs["tenant"])).first() is None:
            # The command line creates a tenant on its first key (the embedded default's bootstrap).
            try:
                check_tenant_id(attrs["tenant"], "tenant")
            except DirectoryError as e:
                raise KeyAdminError(str(e)) from None
            conn.execute(tenants.insert().values(id=attrs["tenant"], name=attrs["tenant"], created_at=now))
            record_by(conn, actor, "tenant.create", tenant=attrs["tenant"], target=f"tenant:{attrs['tenant']}",
                      details={"name": attrs["tenant"], "with_first_key": True})
        key_id = "ost-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
        key = f"{key_id}.{secrets.token_urlsafe(32)}"
        conn.execute(api_keys.insert().values(
            id=key_id, hash=hash_key(self.secret, key), name=attrs["name"], tenant_id=attrs["tenant"],
            user_id=attrs["user"], role=attrs["role"], scopes=attrs["scopes"], models=attrs["models"],
            clearance=attrs["clearance"], tags=attrs["tags"], created_at=now, expires_at=attrs["expires_at"],
            lineage=attrs.get("lineage") or key_id))
        return key, self._get(conn, key_id)

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        q = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            q = q.where(api_keys.c.tenant_id == tenant)
        with self.store.engine.connect() as conn:
            return [_record(row) for row in conn.execute(q)]

    def revoke(self, key_id: str, *, actor: Actor = CLI) -> KeyRecord:
        """Revoke a key at once (revoking a revoked key changes nothing and records nothing)."""
        with self.store.engine.begin() as conn:
            record = self._get(conn, key_id)
            if record.revoked_at is None:
                conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC)))
                record_by(conn, actor, "key.revoke", tenant=record.tenant, target=key_id,
                          details={"lineage": record.lineage, "user": record.user, "role": record.role})
                bump_generation(conn)
            return self._get(conn, key_id)

    def rotate(self, key_id: str, grace: timedelta, *, actor: Actor = CLI) -> tuple[str, KeyRecord]:
        """Issue a successor with the same attributes; the old key keeps working for `grace`."""
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            old = self._get(conn, key_id)
            if old.status(now) != "active":
                raise KeyAdminError(f"key {key_id} is {old.status(now)}; only an active key can be rotated")
            key, new = self._insert(conn, now, actor, tenant=old.tenant, user=old.user, role=old.role,
                                    scopes=old.scopes, models=old.models, clearance=old.clearance, tags=old.tags,
                                    name=old.name, expires_at=old.expires_at, lineage=old.lineage)
            until = now + grace
            if old.expires_at is not None:
                until = min(until, old.expires_at)
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(expires_at=until, rotated_to=new.id))
            record_by(conn, actor, "key.rotate", tenant=old.tenant, target=key_id,
                      details={"successor": new.id, "lineage": old.lineage, "old_expires_at": until.isoformat(),
                               "grace_seconds": grace.total_seconds()})
            bump_generation(conn)
        return key, new

    def _get(self, conn: sa.Connection, key_id: str) -> KeyRecord:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise KeyAdminError(f"no key {key_id!r}")
        return _record(row)

    def generation(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(meta.c.key_generation).where(meta.c.id == 1)).scalar_one())

    def snapshot(self) -> tuple[int, dict[str, tuple[KeyRecord, str | None]]]:
        """Every key by hash with its user's team, and the generation it reflects (one transaction)."""
        with self.store.engine.begin() as conn:
            gen = int(conn.execute(sa.select(meta.c.key_generation).where(meta.c.id == 1)).scalar_one())
            q = sa.select(api_keys, users.c.team).outerjoin(
                users, sa.and_(users.c.tenant_id == api_keys.c.tenant_id, users.c.id == api_keys.c.user_id))
            rows = conn.execute(q).all()
        return gen, {row.hash: (_record(row), row.team) for row in rows}


class KeyIndex:
    """The in-memory view the request path reads: hash -> (principal, expiry, status)."""

    def __init__(self, service: KeyService) -> None:
        self.service = service
        # Other in-memory views of the directory (budgets, limit overrides) reloaded with the keys.
        self.followers: list[Callable[[], None]] = []
        self.generation = -1
        self._by_hash: dict[str, tuple[Principal, float | None, float | None]] = {}

    @property
    def auth_required(self) -> bool:
        # As soon as any key exists (even a revoked one), every request must authenticate.
        return bool(self._by_hash)

    def load(self) -> None:
        gen, records = self.service.snapshot()
        self._by_hash = {
            h: (r.principal(team), r.expires_at.timestamp() if r.expires_at else None,
                r.revoked_at.timestamp() if r.revoked_at else None)
            for h, (r, team) in records.items()
        }
        for follow in self.followers:
            follow()
        self.generation = gen

    def lookup(self, key: str) -> tuple[Principal | None, str]:
        """(principal, "") for a usable key, else (None, why)."""
        entry = self._by_hash.get(hash_key(self.service.secret, key))
        if entry is None:
            return None, "invalid"
        principal, expires, revoked = entry
        if revoked is not None:
            return None, "revoked"
        if expires is not None and expires <= time.time():
            return None, "expired"
        return principal, ""

    async def refresh_forever(self, every: float) -> None:
        """Poll the generation counter; reload on change. Errors are logged and retried: a database
        blip must not stop the gateway from serving with the keys it knows."""
        while True:
            await asyncio.sleep(every)
            try:
                gen = await asyncio.to_thread(self.service.generation)
                if gen != self.generation:
                    await asyncio.to_thread(self.load)
                    log.info("directory reloaded (generation %d, %d keys)", self.generation, len(self._by_hash))
            except Exception:
                log.exception("could not refresh keys, budgets and limits; serving with those loaded before")


def _check_attributes(tenant: str, role: str, scopes: list[str], clearance: str) -> None:
    if not tenant or len(tenant) > 64:
        raise KeyAdminError("tenant must be 1 to 64 characters")
    if role not in ROLES:
        raise KeyAdminError(f"role must be one of {', '.join(ROLES)}")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise KeyAdminError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if clearance not in CLEARANCES:
        raise KeyAdminError(f"clearance must be one of {', '.join(CLEARANCES)}")


def _utc(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; every time stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(row: Any) -> KeyRecord:
    return KeyRecord(id=row.id, name=row.name, tenant=row.tenant_id, user=row.user_id, role=row.role,
                     scopes=list(row.scopes), models=None if row.models is None else list(row.models),
                     clearance=row.clearance, tags=dict(row.tags), created_at=_utc(row.created_at),  # type: ignore[arg-type]
                     expires_at=_utc(row.expires_at), revoked_at=_utc(row.revoked_at), rotated_to=row.rotated_to,
                     lineage=row.lineage or row.id)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
