"""Usage and cost, off the hot path: summed in memory per minute and scope, appended to the store.

A finished call adds its tokens and cost to an in-memory row keyed by (minute, tenant, team, user,
key, route, deployment); a background task appends the rows every `every` seconds in one
transaction. Rows are never updated, so replicas append side by side and reports sum them. What is
not yet flushed when a process dies is lost from reports (at most one interval); budget counters do
not depend on it while their Redis counter lives.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ostiary.store import Store
from ostiary.store.schema import usage

log = logging.getLogger("ostiary.limits")

Row = tuple[int, str, str | None, str | None, str | None, str, str | None]  # minute, tenant, team, user, key, route, deployment


class UsageMeter:
    def __init__(self, store: Store, every: float = 2.0) -> None:
        self.store = store
        self.every = every
        self._rows: dict[Row, list[float]] = {}

    def add(self, row: Row, *, error: bool, input_tokens: int, output_tokens: int, cached_tokens: int,
            cost: float) -> None:
        sums = self._rows.get(row)
        if sums is None:
            sums = self._rows[row] = [0, 0, 0, 0, 0, 0.0]
        sums[0] += 1
        sums[1] += error
        sums[2] += input_tokens
        sums[3] += output_tokens
        sums[4] += cached_tokens
        sums[5] += cost

    def flush(self) -> int:
        """Append what was added since the last flush (synchronously: at shutdown and in tests)."""
        rows, self._rows = self._rows, {}
        written, unwritten = self._write(rows)
        self._restore(unwritten)
        return written

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.flush_soon()

    async def flush_soon(self) -> int:
        # Taken on the event loop (where `add` runs), written in a thread, put back on the loop.
        rows, self._rows = self._rows, {}
        written, unwritten = await asyncio.to_thread(self._write, rows)
        self._restore(unwritten)
        return written

    def _write(self, rows: dict[Row, list[float]]) -> tuple[int, dict[Row, list[float]]]:
        """(rows written, rows to try again). All in one transaction; if the database refuses the
        batch, row by row, dropping (and logging) a row it refuses on its own account, so one bad
        row cannot block the others forever. Rows that meet an outage are kept for the next flush."""
        if not rows:
            return 0, {}
        try:
            with self.store.engine.begin() as conn:
                conn.execute(usage.insert(), [_values(r, s) for r, s in rows.items()])
            return len(rows), {}
        except sa.exc.SQLAlchemyError as e:
            if not isinstance(e, sa.exc.DataError | sa.exc.IntegrityError):
                log.warning("could not write usage (%s); retrying with the next flush", e)
                return 0, rows
        written, items = 0, list(rows.items())
        for i, (row, sums) in enumerate(items):
            v = _values(row, sums)
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(usage.insert(), [v])
                written += 1
            except (sa.exc.DataError, sa.exc.IntegrityError):
                log.exception("dropped a usage row the database refuses: %s", {k: v[k] for k in _NAMES})
            except sa.exc.SQLAlchemyError as e:
                log.warning("could not write usage (%s); retrying with the next flush", e)
                return written, dict(items[i:])
        return written, {}

    def _restore(self, rows: dict[Row, list[float]]) -> None:
        # Put them back, merged with what arrived meanwhile, for the next attempt.
        for row, s in rows.items():
            mine = self._rows.setdefault(row, [0, 0, 0, 0, 0, 0.0])
            for i, v in enumerate(s):
                mine[i] += v


_NAMES = ("tenant_id", "team", "user_id", "key_id", "model", "deployment")
_WIDTHS = {"tenant_id": 64, "team": 200, "user_id": 200, "key_id": 200, "model": 200, "deployment": 200}


def _values(row: Row, s: list[float]) -> dict[str, Any]:
    minute, tenant, team, user, key, route, deployment = row
    at = datetime.fromtimestamp(minute * 60, UTC)
    names = {"tenant_id": tenant, "team": team, "user_id": user, "key_id": key, "model": route,
             "deployment": deployment}
    # Token claims are the caller's to choose: cut them to the columns' width rather than fail.
    clipped = {k: v if v is None else v[:_WIDTHS[k]] for k, v in names.items()}
    return {"minute": at, "day": at.strftime("%Y-%m-%d"), **clipped, "requests": int(s[0]), "errors": int(s[1]),
            "input_tokens": int(s[2]), "output_tokens": int(s[3]), "cached_tokens": int(s[4]), "cost_usd": s[5]}
