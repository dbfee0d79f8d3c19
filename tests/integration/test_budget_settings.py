"""Budgets and rate-limit overrides per scope on real SQLite and PostgreSQL: validation, tenant
derivation, key lineage, the events and generation of each change, and what the gateway loads."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ostiary.identity import keys as keys_module
from ostiary.identity.directory import Directory
from ostiary.identity.keys import KeyService
from ostiary.limits.settings import (
    BudgetRule,
    LimitRule,
    NotFoundError,
    Scope,
    Settings,
    SettingsError,
    load_budgets,
    load_limits,
    parse_scope,
)
from ostiary.store import Store
from ostiary.store.events import Actor, list_events
from ostiary.store.schema import api_keys, meta

ROOT = Actor("key:ost-root", "ops")
SECRET = b"test-secret-0123456789abcdef0123"
MONTHLY = BudgetRule(amount_usd=100, period="month")


def generation(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(meta.c.key_generation)).scalar_one())


def tenants(store: Store, *ids: str) -> None:
    for t in ids:
        Directory(store).create_tenant(t, actor=ROOT)


@pytest.mark.parametrize("text, parsed", [
    ("tenant:acme", Scope("tenant", "acme", None)),
    ("team:acme/Risk Analytics", Scope("team", "acme", "Risk Analytics")),
    ("user:acme/alice@acme.com", Scope("user", "acme", "alice@acme.com")),
    ("key:ost-3kq9x2mf", Scope("key", None, "ost-3kq9x2mf")),
])
def test_scopes_parse(text: str, parsed: Scope) -> None:
    assert parse_scope(text) == parsed and str(parsed) == text


@pytest.mark.parametrize("text", [
    "", "acme", "tenant:", "tenant:Acme", "tenant:acme/x", "team:acme", "team:acme/", "team:/risk",
    "user:acme/a/b", "user:acme/ alice", "org:acme", "key:", "key:3kq9x2mf", "key:ost-ABC", "key:ost-a.b",
    "user:acme/" + "x" * 201,
])
def test_bad_scopes_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_scope(text)
    assert info.value.param == "scope" and "scope" in str(info.value)


@pytest.mark.parametrize("kwargs, param", [
    ({"amount_usd": 0, "period": "month"}, "amount_usd"),
    ({"amount_usd": -5, "period": "month"}, "amount_usd"),
    ({"amount_usd": math.inf, "period": "month"}, "amount_usd"),
    ({"amount_usd": math.nan, "period": "month"}, "amount_usd"),
    ({"amount_usd": True, "period": "month"}, "amount_usd"),
    ({"amount_usd": 5, "period": "week"}, "period"),
    ({"amount_usd": 5, "period": "month", "thresholds": (0, 50)}, "thresholds"),
    ({"amount_usd": 5, "period": "month", "thresholds": (50, 101)}, "thresholds"),
    ({"amount_usd": 5, "period": "month", "thresholds": (50, 50)}, "thresholds"),
    ({"amount_usd": 5, "period": "month", "thresholds": (50.5,)}, "thresholds"),
])
def test_bad_budgets_are_refused(kwargs: dict, param: str) -> None:
    with pytest.raises(SettingsError) as info:
        BudgetRule(**kwargs)
    assert info.value.param == param


def test_budget_thresholds_are_kept_sorted() -> None:
    rule = BudgetRule(amount_usd=10, period="day", thresholds=(100, 25, 75))
    assert rule.thresholds == (25, 75, 100) and isinstance(rule.amount_usd, float)
    assert BudgetRule(amount_usd=1, period="total", thresholds=()).thresholds == ()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one"),
    ({"rpm": 0}, "rpm must be"),
    ({"tpm": -1}, "tpm must be"),
    ({"concurrent": 2**31}, "concurrent must be"),
    ({"output_tpm": True}, "output_tpm must be"),
    ({"input_tpm": 1.5}, "input_tpm must be"),
])
def test_bad_limits_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        LimitRule(**kwargs)


def test_budgets_by_scope_with_tenant_derived_events_and_generation(store: Store) -> None:
    tenants(store, "acme", "globex")
    s = Settings(store)
    g0 = generation(store)
    for scope in ("tenant:acme", "team:acme/risk", "user:acme/alice", "tenant:globex"):
        s.set_budget(scope, MONTHLY, actor=ROOT)
    assert generation(store) == g0 + 4
    assert [(b.scope, b.tenant) for b in s.list_budgets("acme")] == [
        ("team:acme/risk", "acme"), ("tenant:acme", "acme"), ("user:acme/alice", "acme")]
    raised = BudgetRule(amount_usd=250.5, period="day", thresholds=(90,))
    assert s.set_budget("team:acme/risk", raised, actor=ROOT).rule == raised
    assert s.get_budget("team:acme/risk").rule == raised
    event = list_events(store, tenant="acme", limit=1)[0]
    assert (event.action, event.target, event.actor) == ("budget.set", "team:acme/risk", "key:ost-root")
    assert event.details == {"old": MONTHLY.public(), "new": raised.public()}

    removed = s.delete_budget("user:acme/alice", actor=ROOT)
    assert removed.rule == MONTHLY and list_events(store, tenant="acme", limit=1)[0].action == "budget.delete"
    with pytest.raises(NotFoundError, match="no budget is set for user:acme/alice"):
        s.delete_budget("user:acme/alice", actor=ROOT)
    with pytest.raises(NotFoundError, match="no tenant 'nothere'"):
        s.set_budget("tenant:nothere", MONTHLY, actor=ROOT)
    with pytest.raises(NotFoundError, match="no tenant 'globex'"):  # confined: exactly like a missing tenant
        s.set_budget("team:globex/x", MONTHLY, actor=ROOT, within="acme")
    with store.engine.connect() as conn:
        loaded = load_budgets(conn)
    assert loaded == {"tenant:acme": MONTHLY, "team:acme/risk": raised, "tenant:globex": MONTHLY}
    assert generation(store) == g0 + 6


def test_limits_by_scope(store: Store) -> None:
    tenants(store, "acme")
    s = Settings(store)
    rule = LimitRule(rpm=60, concurrent=2)
    stored = s.set_limits("user:acme/bob", rule, actor=ROOT, within="acme")
    assert (stored.scope, stored.tenant, stored.rule) == ("user:acme/bob", "acme", rule)
    assert stored.public()["tpm"] is None and stored.public()["rpm"] == 60
    s.set_limits("user:acme/bob", LimitRule(tpm=10_000), actor=ROOT)  # replaces the whole rule
    with store.engine.connect() as conn:
        assert load_limits(conn) == {"user:acme/bob": LimitRule(tpm=10_000)}
    assert [e.action for e in list_events(store, tenant="acme")][:2] == ["limits.set", "limits.set"]
    assert s.delete_limits("user:acme/bob", actor=ROOT).rule == LimitRule(tpm=10_000)
    with pytest.raises(NotFoundError):
        s.get_limits("user:acme/bob")


def test_key_rules_live_under_the_lineage_and_follow_rotation(store: Store) -> None:
    tenants(store, "globex")
    svc = KeyService(store, SECRET)
    _, first = svc.create(tenant="acme")
    _, second = svc.rotate(first.id, timedelta(0))
    _, other = svc.create(tenant="globex")
    s = Settings(store)
    # Naming the successor sets the rule of the whole chain.
    stored = s.set_budget(f"key:{second.id}", MONTHLY, actor=ROOT, within="acme")
    assert (stored.scope, stored.tenant) == (f"key:{first.id}", "acme")
    assert s.get_budget(f"key:{first.id}").scope == s.get_budget(f"key:{second.id}").scope
    _, third = svc.rotate(second.id, timedelta(0))
    assert s.get_budget(f"key:{third.id}").rule == MONTHLY
    # Another tenant's key, and a key that does not exist, read the same.
    with pytest.raises(NotFoundError) as hidden:
        s.set_limits(f"key:{other.id}", LimitRule(rpm=1), actor=ROOT, within="acme")
    with pytest.raises(NotFoundError) as missing:
        s.set_limits("key:ost-nothere", LimitRule(rpm=1), actor=ROOT, within="acme")
    assert str(hidden.value) == f"no key {other.id!r}" and str(missing.value) == "no key 'ost-nothere'"
    assert s.list_limits() == []


def test_a_key_is_created_with_its_limits_and_budget_in_one_transaction(store: Store) -> None:
    svc = KeyService(store, SECRET)
    budget = BudgetRule(amount_usd=5, period="day", thresholds=(80,))
    limits = LimitRule(rpm=10, output_tpm=1000)
    actor = Actor("key:ost-admin", "acme")
    _, rec = svc.create(tenant="acme", limits=limits, budget=budget, actor=actor)
    with store.engine.connect() as conn:
        assert load_budgets(conn) == {f"key:{rec.id}": budget}
        assert load_limits(conn) == {f"key:{rec.id}": limits}
    actions = [(e.action, e.target, e.actor) for e in reversed(list_events(store, tenant="acme"))]
    assert actions == [("tenant.create", "tenant:acme", "key:ost-admin"), ("key.create", rec.id, "key:ost-admin"),
                       ("limits.set", f"key:{rec.id}", "key:ost-admin"), ("budget.set", f"key:{rec.id}", "key:ost-admin")]


def test_a_failure_while_storing_the_budget_leaves_no_key_behind(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(keys_module, "write_budget", broken)
    svc = KeyService(store, SECRET)
    with pytest.raises(RuntimeError, match="disk full"):
        svc.create(tenant="acme", limits=LimitRule(rpm=1), budget=MONTHLY)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one() == 0
        assert load_limits(conn) == {}
    assert list_events(store) == []
