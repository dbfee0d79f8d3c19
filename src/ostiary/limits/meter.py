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
        try:
            return self._write(rows)
        except Exception:
            self._restore(rows)
            raise

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.flush_soon()

    async def flush_soon(self) -> int:
        # Taken on the event loop (where `add` runs), written in a thread.
        rows, self._rows = self._rows, {}
        try:
            return await asyncio.to_thread(self._write, rows)
        except Exception:
            self._restore(rows)
            log.exception("could not write usage; retrying with the next flush")
            return 0

    def _write(self, rows: dict[Row, list[float]]) -> int:
        if not rows:
            return 0
        values = []
        for (minute, tenant, team, user, key, route, deployment), s in rows.items():
            at = datetime.fromtimestamp(minute * 60, UTC)
            values.append({"minute": at, "day": at.strftime("%Y-%m-%d"), "tenant_id": tenant, "team": team,
                           "user_id": user, "key_id": key, "model": route, "deployment": deployment,
                           "requests": int(s[0]), "errors": int(s[1]), "input_tokens": int(s[2]),
                           "output_tokens": int(s[3]), "cached_tokens": int(s[4]), "cost_usd": s[5]})
        with self.store.engine.begin() as conn:
            conn.execute(usage.insert(), values)
        return len(values)

    def _restore(self, rows: dict[Row, list[float]]) -> None:
        # Put them back, merged with what arrived meanwhile, for the next attempt.
        for row, s in rows.items():
            mine = self._rows.setdefault(row, [0, 0, 0, 0, 0, 0.0])
            for i, v in enumerate(s):
                mine[i] += v
