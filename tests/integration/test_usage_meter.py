"""Usage written by the meter and read back as budget baselines, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from ostiary.identity.keys import KeyService
from ostiary.limits.book import Book
from ostiary.limits.meter import UsageMeter
from ostiary.limits.settings import BudgetRule, Settings
from ostiary.store import Store
from ostiary.store.events import CLI
from ostiary.store.schema import usage


def _add(meter: UsageMeter, *, tenant: str = "acme", team: str | None = "risk", user: str | None = "alice",
         key: str = "ost-a", route: str = "gpt", cost: float = 1.0, minutes_ago: int = 0) -> None:
    minute = int(time.time() // 60) - minutes_ago
    meter.add((minute, tenant, team, user, key, route, "dep"), error=False, input_tokens=10, output_tokens=5,
              cached_tokens=2, cost=cost)


def test_rows_are_summed_per_minute_and_scope_then_appended(store: Store) -> None:
    meter = UsageMeter(store)
    for _ in range(3):
        _add(meter)
    _add(meter, user="bob", cost=0.5)
    assert meter.flush() == 2  # two distinct rows: alice's three calls summed, bob's one
    _add(meter)
    assert meter.flush() == 1  # appended, never updated
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(usage.c.user_id, sa.func.sum(usage.c.requests), sa.func.sum(usage.c.cost_usd),
                                      sa.func.sum(usage.c.cached_tokens))
                            .group_by(usage.c.user_id).order_by(usage.c.user_id)).all()
    assert [tuple(r) for r in rows] == [("alice", 4, 4.0, 8), ("bob", 1, 0.5, 2)]


def test_names_a_token_chose_are_clipped_to_the_columns(store: Store) -> None:
    meter = UsageMeter(store)
    _add(meter, tenant="t" * 300, user="u" * 500, key="k" * 500, route="m" * 300)
    assert meter.flush() == 1  # PostgreSQL refuses over-long strings: they must never block the flush
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(usage.c.tenant_id, usage.c.user_id)).one()
    assert (len(row.tenant_id), len(row.user_id)) == (64, 200)


def test_an_outage_keeps_the_rows_for_the_next_flush(tmp_path) -> None:  # type: ignore[no-untyped-def]
    down = UsageMeter(Store("postgresql://nobody@127.0.0.1:1/none"))
    _add(down)
    assert down.flush() == 0 and len(down._rows) == 1


def test_budget_baselines_come_from_usage_per_scope_and_key_lineage(store: Store) -> None:
    keys = KeyService(store, b"secret")
    _, first = keys.create(tenant="acme", user="alice")
    _, second = keys.rotate(first.id, timedelta(seconds=0))
    settings = Settings(store)
    month = BudgetRule(amount_usd=100, period="month")
    for scope in ("tenant:acme", "team:acme/risk", "user:acme/alice", f"key:{first.id}"):
        settings.set_budget(scope, month, actor=CLI)
    meter = UsageMeter(store)
    _add(meter, key=first.id, cost=1.0)
    _add(meter, key=second.id, cost=2.0)  # the successor spends from the same key budget
    _add(meter, key="ost-other", user="bob", team=None, cost=4.0)
    _add(meter, tenant="globex", key="ost-g", cost=8.0)
    meter.flush()
    book = Book(store)
    book.load()
    rules = book.rules
    month_now = book.periods.current("month")
    assert rules.base(f"key:{first.id}", month_now) == 3.0
    assert rules.base("user:acme/alice", month_now) == 3.0
    assert rules.base("team:acme/risk", month_now) == 3.0
    assert rules.base("tenant:acme", month_now) == 7.0
    assert set(rules.budgets) == {"tenant:acme", "team:acme/risk", "user:acme/alice", f"key:{first.id}"}
