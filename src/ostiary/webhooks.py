"""Webhooks: JSON events POSTed off the request path, retried with backoff, optionally signed.

Used for budget thresholds (limits/alerts.py) and for the release controller's decisions (a
rollback, or a release paused for a person). The body is signed with HMAC-SHA256 when a secret is
configured (header `x-ostiary-signature: sha256=<hex>`), so the receiver can trust it. A failed
delivery is logged and retried a few times; it never fails what caused it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import timedelta
from typing import Any

import orjson
from pydantic import SecretStr

from ostiary.config.schema import Timeouts
from ostiary.providers.http import HttpPool

log = logging.getLogger("ostiary.webhooks")
_TIMEOUTS = Timeouts(connect=3.0, first_token=10.0, total=10.0)
_ATTEMPTS = 4


class Webhook:
    def __init__(self, pool: HttpPool, what: str) -> None:
        self.pool = pool
        self.what = what  # for the log: "budget", "release"
        self.url: str | None = None
        self.secret: bytes | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def configure(self, url: str | None, secret: SecretStr | None) -> None:
        """Take the URL of a reloaded config; events already on their way keep theirs."""
        self.url = url
        self.secret = secret.get_secret_value().encode() if secret else None

    def post(self, event: dict[str, Any]) -> None:
        """Send `event` in the background (on the running loop); nothing if no URL is configured."""
        if self.url is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(self.url, self.secret, orjson.dumps(event)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, url: str, secret: bytes | None, body: bytes) -> None:
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
            log.warning("%s webhook to %s failed (%s), attempt %d of %d", self.what, url, why, attempt + 1, _ATTEMPTS)
            await asyncio.sleep(0.5 * 2**attempt)

    async def aclose(self) -> None:
        # Give events in flight a moment at shutdown; they are not worth holding the exit for long.
        if self._sending:
            await asyncio.wait(self._sending, timeout=2)
