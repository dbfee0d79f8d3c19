"""Budget periods are calendar days and months of the configured zone, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ostiary.limits.book import Periods


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_a_month_with_a_dst_change_runs_from_local_midnight_to_local_midnight() -> None:
    p = Periods("Europe/Paris")._compute("month", date(2026, 10, 15))
    assert p.id == "2026-10"
    assert p.start == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # summer time: UTC+2
    assert _utc(p.end) == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # winter time: UTC+1


def test_a_day_is_23_or_25_hours_when_the_clocks_change() -> None:
    spring = Periods("Europe/Paris")._compute("day", date(2026, 3, 29))
    autumn = Periods("Europe/Paris")._compute("day", date(2026, 10, 25))
    assert spring.start is not None and autumn.start is not None
    assert (_utc(spring.end) - spring.start).total_seconds() == 23 * 3600
    assert (_utc(autumn.end) - autumn.start).total_seconds() == 25 * 3600


def test_half_hour_zones_and_all_time() -> None:
    p = Periods("Asia/Kolkata")._compute("day", date(2026, 11, 29))
    assert p.id == "2026-11-29" and p.start == datetime(2026, 11, 28, 18, 30, tzinfo=UTC)
    total = Periods("UTC").current("total")
    assert total.id == "total" and total.start is None and total.ttl_ms == 0
