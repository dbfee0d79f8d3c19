"""Budget threshold webhooks: one POST when a budget's spend first crosses a threshold in a period.

"Once" holds across replicas: the limiter's finishing step marks each (budget, period, threshold,
amount) as it reports it (an HSETNX in Redis), so only the request that crossed it sends the webhook;
raising a budget's amount re-arms its thresholds. The first request a budget refuses in a period
sends one `budget.exhausted` event. (Without Redis the marks live in the process: a restart may
announce a crossed threshold again.) Delivery is ostiary/webhooks.py's: off the request path,
retried, signed when a secret is configured.
"""

from __future__ import annotations

import logging
import time

from ostiary.config.schema import Budgets
from ostiary.providers.http import HttpPool
from ostiary.webhooks import Webhook

log = logging.getLogger("ostiary.limits")


class BudgetAlerts:
    def __init__(self, settings: Budgets, pool: HttpPool) -> None:
        self.hook = Webhook(pool, "budget")
        self.configure(settings)

    def configure(self, settings: Budgets) -> None:
        """Take the webhook of a reloaded config; alerts already on their way keep theirs."""
        self.hook.configure(settings.webhook_url, settings.webhook_secret)

    def crossed(self, scope: str, period: str, pct: int, limit: float, spent: float) -> None:
        log.warning("budget %s (%s) crossed %d%%: %.6f of %.6f USD", scope, period, pct, spent, limit)
        self.hook.post({"type": "budget.threshold", "scope": scope, "period": period, "threshold_percent": pct,
                        "limit_usd": limit, "spent_usd": round(spent, 6), "at": time.time()})

    def exhausted(self, scope: str, period: str, limit: float, spent: float) -> None:
        """The budget turned a request away for the first time this period."""
        log.warning("budget %s (%s) refused a request: %.6f of %.6f USD spent", scope, period, spent, limit)
        self.hook.post({"type": "budget.exhausted", "scope": scope, "period": period, "limit_usd": limit,
                        "spent_usd": round(spent, 6), "at": time.time()})

    async def aclose(self) -> None:
        await self.hook.aclose()
