"""Virtual API keys on real SQLite and PostgreSQL: issue, hash, look up, revoke, rotate, replicas."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ostiary.identity.keys import KeyAdminError, KeyIndex, KeyService, hash_key
from ostiary.store import Store
from ostiary.store.schema import api_keys

SECRET = b"test-secret-0123456789abcdef0123"


def test_migrations_are_idempotent(store: Store) -> None:
    store.migrate()
    store.migrate()
    assert store.ping()


def test_create_and_look_up(store: Store) -> None:
    svc = KeyService(store, SECRET)
    key, rec = svc.create(tenant="acme", user="alice", models=["gpt"], tags={"team": "risk"}, name="ci")
    assert key.startswith(rec.id + ".") and rec.id.startswith("ost-")
    index = KeyIndex(svc)
    index.load()
    principal, why = index.lookup(key)
    assert why == "" and principal is not None
    assert (principal.tenant, principal.user, principal.subject, principal.role) == ("acme", "alice", rec.id, "developer")
    assert principal.may_use("gpt") and not principal.may_use("claude")
    assert principal.scopes == {"chat", "embeddings"} and principal.tags == {"team": "risk"}
    assert index.lookup(key + "x") == (None, "invalid")
    assert index.lookup(rec.id) == (None, "invalid")  # the visible id alone is not a credential


def test_only_a_keyed_hash_is_stored(store: Store) -> None:
    svc = KeyService(store, SECRET)
    key, rec = svc.create(tenant="acme")
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == rec.id)).one()
    assert row.hash == hash_key(SECRET, key) and key.split(".", 1)[1] not in str(tuple(row))
    other = KeyIndex(KeyService(store, b"another-secret"))
    other.load()
    assert other.lookup(key) == (None, "invalid")  # without the secret the hash is useless


def test_revoke_and_expiry(store: Store) -> None:
    svc = KeyService(store, SECRET)
    k1, r1 = svc.create(tenant="acme")
    k2, _ = svc.create(tenant="acme", expires_in=timedelta(seconds=-1))
    assert svc.revoke(r1.id).status(r1.created_at + timedelta(days=1)) == "revoked"
    index = KeyIndex(svc)
    index.load()
    assert index.lookup(k1) == (None, "revoked")
    assert index.lookup(k2) == (None, "expired")
    assert index.auth_required  # keys exist, even if none is usable
    with pytest.raises(KeyAdminError, match="no key"):
        svc.revoke("ost-nothere")


def test_rotation_keeps_the_old_key_for_the_grace_period(store: Store) -> None:
    svc = KeyService(store, SECRET)
    old_key, old = svc.create(tenant="acme", user="bob", models=["gpt"], clearance="confidential")
    new_key, new = svc.rotate(old.id, timedelta(hours=1))
    assert (new.tenant, new.user, new.models, new.clearance) == ("acme", "bob", ["gpt"], "confidential")
    index = KeyIndex(svc)
    index.load()
    assert index.lookup(old_key)[0] is not None and index.lookup(new_key)[0] is not None
    listed = {r.id: r for r in svc.list("acme")}
    assert listed[old.id].rotated_to == new.id and listed[old.id].expires_at is not None
    _, newer = svc.rotate(new.id, timedelta(0))
    index.load()
    assert index.lookup(new_key) == (None, "expired") and newer.id != new.id
    with pytest.raises(KeyAdminError, match="only an active key"):
        svc.rotate(new.id, timedelta(hours=1))


@pytest.mark.parametrize("kwargs, message", [
    ({"tenant": ""}, "tenant"),
    ({"tenant": "t", "role": "root"}, "role must be one of"),
    ({"tenant": "t", "scopes": ["chat", "fly"]}, "unknown scope"),
    ({"tenant": "t", "clearance": "top-secret"}, "clearance must be one of"),
])
def test_bad_attributes_are_refused(store: Store, kwargs: dict, message: str) -> None:
    with pytest.raises(KeyAdminError, match=message):
        KeyService(store, SECRET).create(**kwargs)
    assert KeyService(store, SECRET).list() == []  # nothing half-written


def test_list_by_tenant(store: Store) -> None:
    svc = KeyService(store, SECRET)
    svc.create(tenant="acme")
    svc.create(tenant="globex")
    svc.create(tenant="acme")
    assert [r.tenant for r in svc.list("acme")] == ["acme", "acme"]
    assert len(svc.list()) == 3


async def test_a_change_on_one_replica_reaches_another_within_a_second(store: Store) -> None:
    writer = KeyService(store, SECRET)  # one replica (or the CLI) changes keys ...
    key, rec = writer.create(tenant="acme")
    replica = KeyIndex(KeyService(store, SECRET))  # ... another replica serves from memory
    replica.load()
    task = asyncio.ensure_future(replica.refresh_forever(0.1))
    try:
        assert replica.lookup(key)[0] is not None
        writer.revoke(rec.id)
        t0 = time.monotonic()
        while replica.lookup(key)[0] is not None:
            assert time.monotonic() - t0 < 1.0, "revocation not seen within one second"
            await asyncio.sleep(0.02)
        new_key, _ = writer.create(tenant="acme")
        t0 = time.monotonic()
        while replica.lookup(new_key)[0] is None:
            assert time.monotonic() - t0 < 1.0, "new key not seen within one second"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
