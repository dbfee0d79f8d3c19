"""Usage reports on real SQLite and PostgreSQL: grouping, sums, time bounds and the tenant filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ostiary.limits.reports import ReportError, report
from ostiary.store import Store
from ostiary.store.schema import usage

T0 = datetime(2026, 11, 1, 23, 58, tzinfo=UTC)


def row(minute: datetime, tenant: str, model: str, *, team: str | None = None, user: str | None = None,
        key: str | None = None, deployment: str | None = "dep-a", requests: int = 1, errors: int = 0,
        inp: int = 10, out: int = 5, cached: int = 0, cost: float = 0.1) -> dict[str, Any]:
    return {"minute": minute, "day": minute.date().isoformat(), "tenant_id": tenant, "team": team,
            "user_id": user, "key_id": key, "model": model, "deployment": deployment, "requests": requests,
            "errors": errors, "input_tokens": inp, "output_tokens": out, "cached_tokens": cached, "cost_usd": cost}


@pytest.fixture
def filled(store: Store) -> Store:
    rows = [
        row(T0, "acme", "gpt", team="risk", user="alice", key="ost-a", requests=2, inp=100, out=50, cost=0.2),
        row(T0, "acme", "gpt", team="risk", user="alice", key="ost-a", errors=1, inp=3_000_000_000, cost=0.1),
        row(T0 + timedelta(minutes=1), "acme", "claude", team="ops", user="bob", key="ost-b", cached=7, cost=0.3),
        row(T0 + timedelta(minutes=2), "acme", "gpt", team="risk", user="alice", key="ost-a", cost=0.4),  # 00:00 on Nov 2
        row(T0 + timedelta(minutes=3), "globex", "gpt", deployment=None, cost=5.0),
    ]
    with store.engine.begin() as conn:
        conn.execute(usage.insert(), rows)
    return store


def test_group_by_tenant_model_and_day(filled: Store) -> None:
    rows = report(filled, ["tenant", "model", "day"])
    assert [(r["tenant"], r["model"], r["day"], r["requests"]) for r in rows] == [
        ("acme", "claude", "2026-11-01", 1),
        ("acme", "gpt", "2026-11-01", 3),
        ("acme", "gpt", "2026-11-02", 1),
        ("globex", "gpt", "2026-11-02", 1),
    ]
    gpt_nov1 = rows[1]
    assert gpt_nov1 == {"tenant": "acme", "model": "gpt", "day": "2026-11-01", "requests": 3, "errors": 1,
                        "input_tokens": 3_000_000_100, "output_tokens": 55, "cached_tokens": 0,
                        "cost_usd": pytest.approx(0.3)}
    # Plain numbers on both databases (PostgreSQL sums BIGINT into NUMERIC).
    assert all(type(r["input_tokens"]) is int and type(r["cost_usd"]) is float for r in rows)
    assert not any(isinstance(v, Decimal) for r in rows for v in r.values())


def test_group_by_people_and_keys_within_one_tenant(filled: Store) -> None:
    rows = report(filled, ["team", "user", "key"], tenant="acme")
    assert [(r["team"], r["user"], r["key"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("ops", "bob", "ost-b", 1, pytest.approx(0.3)),
        ("risk", "alice", "ost-a", 4, pytest.approx(0.7)),
    ]
    assert report(filled, ["deployment"], tenant="globex") == [
        {"deployment": None, "requests": 1, "errors": 0, "input_tokens": 10, "output_tokens": 5,
         "cached_tokens": 0, "cost_usd": 5.0}]


def test_totals_without_grouping_and_for_nothing(filled: Store) -> None:
    (total,) = report(filled, [])
    assert total["requests"] == 6 and total["cost_usd"] == pytest.approx(6.0) and set(total) == {
        "requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_usd"}
    assert report(filled, [], tenant="initech") == [
        {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}]
    assert report(filled, ["tenant"], tenant="initech") == []


def test_since_is_inclusive_until_exclusive_in_utc(filled: Store) -> None:
    nov2 = datetime(2026, 11, 2, tzinfo=UTC)
    assert [r["requests"] for r in report(filled, [], since=nov2)] == [2]
    assert [r["requests"] for r in report(filled, [], until=nov2)] == [4]
    one_minute = report(filled, ["model"], since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))
    assert [(r["model"], r["requests"]) for r in one_minute] == [("claude", 1)]
    # The same instant written in another zone selects the same rows; a naive time is UTC.
    tokyo = (T0 + timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Tokyo"))
    assert report(filled, ["model"], since=tokyo, until=T0 + timedelta(minutes=2)) == one_minute
    naive = (T0 + timedelta(minutes=1)).replace(tzinfo=None)
    assert report(filled, ["model"], since=naive, until=T0 + timedelta(minutes=2)) == one_minute


@pytest.mark.parametrize("group_by, since, until, message", [
    (["tenant", "planet"], None, None, "cannot group by 'planet'"),
    (["day", "day"], None, None, "twice"),
    ([], T0, T0, "until must be later"),
])
def test_bad_reports_are_refused(store: Store, group_by: list[str], since: datetime | None,
                                 until: datetime | None, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        report(store, group_by, since, until)
