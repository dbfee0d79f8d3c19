"""Budget threshold webhooks: one POST when a budget's spend first crosses a threshold in a period.

"Once" holds across replicas: the limiter's finishing step marks each (budget, period, threshold,
amount) as it reports it (an HSETNX in Redis), so only the request that crossed it sends the webhook;
raising a budget's amount re-arms its thresholds. The first request a budget refuses in a period
sends one `budget.exhausted` event. (Without Redis the marks live in the process: a restart may
announce a crossed threshold again.) Delivery
is off the request path, retried a few times with backoff; the body is signed with HMAC-SHA256 when
a secret is configured (header `x-ostiary-signature: sha256=<hex>`), so the receiver can trust it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import Any

import orjson

from ostiary.config.schema import Budgets, Timeouts
from ostiary.providers.http import HttpPool

log = logging.getLogger("ostiary.limits")
_TIMEOUTS = Timeouts(connect=3.0, first_token=10.0, total=10.0)
_ATTEMPTS = 4


class BudgetAlerts:
    def __init__(self, settings: Budgets, pool: HttpPool) -> None:
        self.pool = pool
        self._sending: set[asyncio.Task[None]] = set()
        self.configure(settings)

    def configure(self, settings: Budgets) -> None:
        """Take the webhook of a reloaded config; alerts already on their way keep theirs."""
        self.url = settings.webhook_url
        self.secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None

    def crossed(self, scope: str, period: str, pct: int, limit: float, spent: float) -> None:
        log.warning("budget %s (%s) crossed %d%%: %.6f of %.6f USD", scope, period, pct, spent, limit)
        self._post({"type": "budget.threshold", "scope": scope, "period": period, "threshold_percent": pct,
                    "limit_usd": limit, "spent_usd": round(spent, 6), "at": time.time()})

    def exhausted(self, scope: str, period: str, limit: float, spent: float) -> None:
        """The budget turned a request away for the first time this period."""
        log.warning("budget %s (%s) refused a request: %.6f of %.6f USD spent", scope, period, spent, limit)
        self._post({"type": "budget.exhausted", "scope": scope, "period": period, "limit_usd": limit,
                    "spent_usd": round(spent, 6), "at": time.time()})

    def _post(self, event: dict[str, Any]) -> None:
        if self.url is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(orjson.dumps(event)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, body: bytes) -> None:
        url, secret = self.url, self.secret
        assert url is not None
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers["x-ostiary-signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        for attempt in range(_ATTEMPTS):
            try:
                req: Any = (self.pool.client(_TIMEOUTS).post(url).headers(headers).body_bytes(body)
                            .timeout(timedelta(seconds=_TIMEOUTS.total)).build())
                resp = await req.send()
                if resp.status < 300:
                    return
                why = f"HTTP {resp.status}"
            except Exception as e:  # noqa: BLE001 - logged, retried
                why = str(e)
            log.warning("budget webhook to %s failed (%s), attempt %d of %d", url, why, attempt + 1, _ATTEMPTS)
            await asyncio.sleep(0.5 * 2**attempt)

    async def aclose(self) -> None:
        # Give alerts in flight a moment at shutdown; they are not worth holding the exit for long.
        if self._sending:
            await asyncio.wait(self._sending, timeout=2)
