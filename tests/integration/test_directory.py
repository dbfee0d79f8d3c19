"""Tenants, users, the admin events of every change and the admin API over them, on real SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa

from ostiary.admin.api import AdminAPI
from ostiary.errors import GatewayError
from ostiary.identity.directory import (
    ConflictError,
    Directory,
    DirectoryError,
    NotAllowedError,
    NotFoundError,
)
from ostiary.identity.keys import KeyRecord, KeyService
from ostiary.store import Store
from ostiary.store.events import CLI, Actor, list_events, record
from ostiary.store.schema import admin_events, api_keys, meta, usage

ROOT = Actor("key:ost-root", "ops")
ACME_ADMIN = Actor("key:ost-acmeadmin", "acme")
SECRET = b"test-secret-0123456789abcdef0123"


def generation(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(meta.c.key_generation)).scalar_one())


def test_tenants_are_created_listed_read_and_renamed_with_events(store: Store) -> None:
    d = Directory(store)
    acme = d.create_tenant("acme", "Acme Corp", actor=ROOT)
    d.create_tenant("globex", actor=ROOT)
    assert (acme.id, acme.name) == ("acme", "Acme Corp")
    assert [t.id for t in d.list_tenants()] == ["acme", "globex"]
    assert [t.id for t in d.list_tenants(within="acme")] == ["acme"]
    assert d.get_tenant("globex").name == "globex"  # the name defaults to the id
    assert d.rename_tenant("acme", "ACME Inc.", actor=ACME_ADMIN, within="acme").name == "ACME Inc."
    events = list_events(store, tenant="acme")
    assert [(e.action, e.actor, e.actor_tenant, e.target) for e in events] == [
        ("tenant.update", "key:ost-acmeadmin", "acme", "tenant:acme"),
        ("tenant.create", "key:ost-root", "ops", "tenant:acme"),
    ]
    assert events[0].details == {"name": {"old": "Acme Corp", "new": "ACME Inc."}}
    d.rename_tenant("acme", "ACME Inc.", actor=ROOT)  # no change, no event
    assert len(list_events(store, tenant="acme")) == 2


def test_tenant_ids_names_and_duplicates_are_checked(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)
    with pytest.raises(ConflictError, match="exists already"):
        d.create_tenant("acme", "again", actor=ROOT)
    for bad in ["", "Acme", "-acme", "_x", "a" * 65, "acme corp", "acme/x", "ac:me", "é"]:
        with pytest.raises(DirectoryError, match="1 to 64 characters") as info:
            d.create_tenant(bad, actor=ROOT)
        assert info.value.param == "id"
    d.create_tenant("a" * 64, actor=ROOT)
    d.create_tenant("0-a_b", actor=ROOT)
    with pytest.raises(DirectoryError, match="200 characters"):
        d.create_tenant("long", "x" * 201, actor=ROOT)
    with pytest.raises(DirectoryError, match="must not be empty"):
        d.rename_tenant("acme", "  ", actor=ROOT)
    # Another tenant is reported exactly as a missing one.
    with pytest.raises(NotFoundError) as hidden:
        d.get_tenant("acme", within="globex")
    with pytest.raises(NotFoundError) as missing:
        d.get_tenant("nothere")
    assert str(hidden.value) == "no tenant 'acme'" and str(missing.value) == "no tenant 'nothere'"
    assert [e.action for e in list_events(store)] == ["tenant.create"] * 3


def test_users_lifecycle_records_each_change_and_moves_the_generation(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)
    g0 = generation(store)
    alice = d.create_user("acme", "alice@acme.com", name="Alice", team="Risk Analytics", actor=ACME_ADMIN,
                          within="acme")
    assert (alice.tenant, alice.id, alice.team, alice.role) == ("acme", "alice@acme.com", "Risk Analytics",
                                                                "developer")
    assert generation(store) == g0 + 1
    d.create_user("acme", "bob", role="auditor", actor=ACME_ADMIN)
    assert [u.id for u in d.list_users("acme")] == ["alice@acme.com", "bob"]

    changed = d.update_user("acme", "alice@acme.com", role="tenant_admin", team=None, actor=ACME_ADMIN)
    assert (changed.role, changed.team, changed.name) == ("tenant_admin", None, "Alice")
    assert generation(store) == g0 + 3
    event = list_events(store, tenant="acme", limit=1)[0]
    assert (event.action, event.target) == ("user.update", "user:acme/alice@acme.com")
    assert event.details == {"role": {"old": "developer", "new": "tenant_admin"},
                             "team": {"old": "Risk Analytics", "new": None}}
    d.update_user("acme", "alice@acme.com", role="tenant_admin", actor=ACME_ADMIN)  # nothing changes
    assert generation(store) == g0 + 3 and list_events(store, tenant="acme", limit=1)[0].id == event.id

    gone = d.delete_user("acme", "bob", actor=ACME_ADMIN)
    assert gone.role == "auditor" and [u.id for u in d.list_users()] == ["alice@acme.com"]
    last = list_events(store, tenant="acme", limit=1)[0]
    assert (last.action, last.details["role"]) == ("user.delete", "auditor")
    with pytest.raises(NotFoundError):
        d.get_user("acme", "bob")
    assert generation(store) == g0 + 4


def test_user_input_is_checked(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)
    d.create_user("acme", "alice", actor=ROOT)
    with pytest.raises(ConflictError, match="exists already"):
        d.create_user("acme", "alice", actor=ROOT)
    with pytest.raises(NotFoundError, match="no tenant 'nothere'"):
        d.create_user("nothere", "alice", actor=ROOT)
    for bad, param in [("", "id"), ("a/b", "id"), (" alice", "id"), ("x" * 201, "id"), ("tab\there", "id")]:
        with pytest.raises(DirectoryError) as info:
            d.create_user("acme", bad, actor=ROOT)
        assert info.value.param == param
    with pytest.raises(DirectoryError, match="role 'root' is unknown") as role:
        d.create_user("acme", "carol", role="root", actor=ROOT)
    assert role.value.param == "role"
    with pytest.raises(DirectoryError) as team:
        d.update_user("acme", "alice", team="risk/ops", actor=ROOT)
    assert team.value.param == "team"
    assert [u.id for u in d.list_users()] == ["alice"]  # nothing half-written


def test_a_tenant_confined_caller_cannot_reach_another_tenants_users(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)
    d.create_tenant("globex", actor=ROOT)
    d.create_user("globex", "gina", actor=ROOT)
    for attempt in (lambda: d.get_user("globex", "gina", within="acme"),
                    lambda: d.update_user("globex", "gina", name="x", actor=ACME_ADMIN, within="acme"),
                    lambda: d.delete_user("globex", "gina", actor=ACME_ADMIN, within="acme"),
                    lambda: d.create_user("globex", "eve", actor=ACME_ADMIN, within="acme")):
        with pytest.raises(NotFoundError):
            attempt()
    assert d.get_user("globex", "gina").name == "" and [u.id for u in d.list_users("globex")] == ["gina"]


def test_admin_users_are_kept_from_tenant_admins(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)
    d.create_user("acme", "boss", role="admin", actor=ROOT)
    d.create_user("acme", "dev", actor=ROOT)
    with pytest.raises(NotAllowedError):
        d.update_user("acme", "boss", role="developer", actor=ACME_ADMIN, keep_admins=True)
    with pytest.raises(NotAllowedError):
        d.update_user("acme", "dev", role="admin", actor=ACME_ADMIN, keep_admins=True)
    with pytest.raises(NotAllowedError):
        d.delete_user("acme", "boss", actor=ACME_ADMIN, keep_admins=True)
    assert {u.id: u.role for u in d.list_users()} == {"boss": "admin", "dev": "developer"}
    assert d.update_user("acme", "dev", team="ops", actor=ACME_ADMIN, keep_admins=True).team == "ops"


def test_key_changes_are_recorded_without_secrets(store: Store) -> None:
    svc = KeyService(store, SECRET)
    key, rec = svc.create(tenant="acme", user="alice", tags={"team": "risk"})  # the CLI's way
    new_key, new = svc.rotate(rec.id, timedelta(minutes=5), actor=ACME_ADMIN)
    svc.revoke(new.id, actor=ROOT)
    svc.revoke(new.id, actor=ROOT)  # already revoked: nothing changes, nothing is recorded
    events = list_events(store, tenant="acme")
    assert [(e.action, e.actor) for e in reversed(events)] == [
        ("tenant.create", "cli"), ("key.create", "cli"), ("key.rotate", "key:ost-acmeadmin"),
        ("key.revoke", "key:ost-root")]
    created, rotated = events[2], events[1]
    assert created.target == rec.id and created.details["user"] == "alice" and created.actor_tenant is None
    assert rotated.target == rec.id and rotated.details["successor"] == new.id
    assert rotated.details["grace_seconds"] == 300.0
    with store.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(sa.select(api_keys.c.hash))]
        raw = str(conn.execute(sa.select(admin_events)).all())
    for secret in (key, new_key, key.split(".", 1)[1], *hashes):
        assert secret not in raw


def test_record_refuses_secret_fields_and_rolls_back_with_the_change(store: Store) -> None:
    with store.engine.begin() as conn, pytest.raises(ValueError, match="secret fields: key"):
        record(conn, actor="cli", actor_tenant=None, action="key.create", tenant="acme", target="x",
               details={"key": "ost-abc.secret"})
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        record(conn, actor="cli", actor_tenant=None, action="tenant.create", tenant="acme", target="x", details={})
        raise RuntimeError("the change failed")
    assert list_events(store) == []


def test_events_filter_by_tenant_and_time_and_page_newest_first(store: Store) -> None:
    d = Directory(store)
    for t in ("acme", "globex", "initech"):
        d.create_tenant(t, actor=CLI)
    for n in range(5):
        d.create_user("acme", f"u{n}", actor=ACME_ADMIN)
    acme = list_events(store, tenant="acme")
    assert len(acme) == 6 and all(e.tenant == "acme" for e in acme)
    assert [e.id for e in acme] == sorted((e.id for e in acme), reverse=True)
    page1 = list_events(store, tenant="acme", limit=4)
    page2 = list_events(store, tenant="acme", limit=4, before=page1[-1].id)
    assert [e.id for e in page1 + page2] == [e.id for e in acme]
    # `since` is compared in UTC, whatever offset the caller writes it with.
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert list_events(store, since=later.astimezone(ZoneInfo("Asia/Tokyo"))) == []
    assert len(list_events(store, since=acme[-1].at)) == 8
    assert list_events(store, since=acme[-1].at - timedelta(hours=9)) == list_events(store)
    with pytest.raises(ValueError, match="limit"):
        list_events(store, limit=0)


def test_racing_creators_get_one_success_and_clear_conflicts(store: Store) -> None:
    d = Directory(store)
    d.create_tenant("acme", actor=ROOT)

    def attempt(make: Callable[[], object]) -> str:
        try:
            make()
            return "created"
        except ConflictError:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        tenants = list(pool.map(lambda _: attempt(lambda: d.create_tenant("globex", actor=ROOT)), range(8)))
        users = list(pool.map(lambda _: attempt(lambda: d.create_user("acme", "alice", actor=ROOT)), range(8)))
    assert sorted(tenants) == sorted(users) == ["conflict"] * 7 + ["created"]
    assert [e.action for e in list_events(store)].count("user.create") == 1


async def test_the_admin_api_on_this_database(store: Store) -> None:
    """The HTTP-free admin API over this database: what the server would send, serialisable as is."""
    svc = KeyService(store, SECRET)
    _, root_rec = svc.create(tenant="ops", role="admin", scopes=["admin"])
    _, acme_rec = svc.create(tenant="acme", role="tenant_admin", scopes=["admin"])
    api = AdminAPI(svc)

    async def call(who: KeyRecord, method: str, path: str, body: object = None, query: str = "") -> tuple[int, Any]:
        try:
            status, out = await api.handle(method, "/admin/v1" + path, query,
                                           b"" if body is None else orjson.dumps(body), who.principal())
        except GatewayError as e:
            status, out = e.status, e.to_openai()
        orjson.dumps(out)  # what the server does with it
        return status, out

    assert (await call(root_rec, "POST", "/tenants", {"id": "globex"}))[0] == 201
    assert (await call(root_rec, "POST", "/tenants", {"id": "globex"}))[0] == 409
    assert (await call(acme_rec, "POST", "/users", {"id": "alice", "team": "risk"}))[0] == 201
    status, user = await call(acme_rec, "PATCH", "/users/acme/alice", {"role": "auditor"})
    assert (status, user["role"]) == (200, "auditor")
    status, budget = await call(acme_rec, "PUT", "/budgets/team:acme/risk", {"amount_usd": 20, "period": "day"})
    assert (status, budget["tenant"]) == (200, "acme")
    status, key = await call(acme_rec, "POST", "/keys", {"limits": {"tpm": 1000}})
    assert status == 201 and key["limits"]["tpm"] == 1000
    assert (await call(acme_rec, "GET", f"/limits/key:{key['id']}"))[1]["tpm"] == 1000
    assert (await call(acme_rec, "GET", "/users/globex/alice"))[0] == 404
    with store.engine.begin() as conn:
        conn.execute(usage.insert().values(
            minute=datetime(2026, 11, 3, 8, 1, tzinfo=UTC), day="2026-11-03", tenant_id="acme", team="risk",
            user_id="alice", key_id=key["id"], model="gpt", deployment="d", requests=4, errors=1,
            input_tokens=2**40, output_tokens=3, cached_tokens=0, cost_usd=0.25))
    status, report = await call(acme_rec, "GET", "/usage", query="group_by=team,day&since=2026-11-03")
    assert status == 200 and report["data"] == [
        {"team": "risk", "day": "2026-11-03", "requests": 4, "errors": 1, "input_tokens": 2**40,
         "output_tokens": 3, "cached_tokens": 0, "cost_usd": 0.25}]
    status, events = await call(acme_rec, "GET", "/events", query="limit=3")
    assert [e["action"] for e in events["data"]] == ["limits.set", "key.create", "budget.set"]
    assert events["next_before"] == events["data"][-1]["id"]
    assert all(e["actor"] == f"key:{acme_rec.id}" for e in events["data"])
