"""The gateway: the live configuration and everything built from it.

A `Runtime` is immutable and belongs to one config version: the router and the composed pipeline.
Reloading builds a new runtime and swaps one reference; a request keeps the runtime it started with,
so in-flight requests finish on the old config while new ones use the new. What must outlive a
reload (connection pools, deployment health, the store) lives on the `Gateway`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ostiary.admin.api import AdminAPI
from ostiary.audit.event import describe, notice
from ostiary.audit.feedback import leave as leave_feedback
from ostiary.audit.stage import AuditStage
from ostiary.audit.subjects import Subjects
from ostiary.audit.trail import AuditTrail
from ostiary.config.load import ConfigError, LoadedConfig, load_default, load_file
from ostiary.errors import GatewayError
from ostiary.guardrails.review import Reviews
from ostiary.guardrails.stage import GuardrailsStage
from ostiary.identity.authorize import Authorize
from ostiary.identity.keys import KeyIndex, KeyService
from ostiary.identity.principal import Principal
from ostiary.identity.stage import Identify
from ostiary.identity.tokens import TokenVerifier
from ostiary.limits.alerts import BudgetAlerts
from ostiary.limits.book import Book
from ostiary.limits.meter import UsageMeter
from ostiary.limits.rate import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from ostiary.limits.stage import LimitsStage
from ostiary.llmops.prompts import Prompts
from ostiary.llmops.releases import Releases
from ostiary.llmops.stage import PromptStage, ReleaseStage
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler, Stage, compose
from ostiary.providers.anthropic import AnthropicProvider
from ostiary.providers.base import Provider
from ostiary.providers.http import HttpPool
from ostiary.providers.mock import MockProvider
from ostiary.providers.openai import AzureProvider, OpenAIProvider
from ostiary.routing.health import HealthBook
from ostiary.routing.router import Router
from ostiary.telemetry import Telemetry, TelemetryStage
from ostiary.webhooks import Webhook

log = logging.getLogger("ostiary")


@dataclass(frozen=True, slots=True)
class Runtime:
    loaded: LoadedConfig
    router: Router
    identify: Identify
    handle: Handler
    version_header: bytes
    models_body: bytes
    limits: LimitsStage
    guardrails: GuardrailsStage | None

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return self.loaded.config

    @property
    def version(self) -> str:
        return self.loaded.version


class Gateway:
    def __init__(self, loaded: LoadedConfig, config_path: Path | None = None) -> None:
        self.config_path = config_path
        self.pool = HttpPool()
        self.providers: dict[str, Provider] = {
            "openai": OpenAIProvider(self.pool),
            "azure": AzureProvider(self.pool),
            "anthropic": AnthropicProvider(self.pool),
            "mock": MockProvider(),
        }
        self.health = HealthBook(loaded.config.breaker)
        cfg = loaded.config
        key_service = KeyService.open(cfg)
        self.store = key_service.store
        self.keys = KeyIndex(key_service)
        # Budget periods follow the zone configured at start (like the stores, a change needs a restart).
        self.book = Book(self.store, cfg.budgets.timezone)
        self.keys.followers.append(self.book.load)
        self.keys.load()
        self.meter = UsageMeter(self.store)
        self.reviews = Reviews(self.store)
        self.prompts = Prompts(self.store, cfg.prompts.protected_labels)
        self.prompts.load()
        self.keys.followers.append(self.prompts.load)  # a new version or a moved label, on any replica
        self.releases = Releases(self.store, self.prompts, lambda: self.runtime.config)
        self.releases.load()
        self.keys.followers.append(self.releases.load)  # a release's step, pause, rollback, on any replica
        # The trail's files and keys are chosen at start (like the store): a change needs a restart.
        self.audit = AuditTrail(cfg.audit, self.store, cfg.server.data_dir) if cfg.audit.enabled else None
        self.subjects = subjects = Subjects(self.audit.log, self.audit.keyring) if self.audit else None
        if self.audit is not None:
            # An erasure or a retention run on any replica deletes data keys: drop the cached ones.
            self.keys.followers.append(self.audit.keyring.forget)
        self.admin = AdminAPI(key_service, subjects, tuple(cfg.audit.verifier_keys), self.prompts, self.releases)
        # Metrics outlive reloads; the OTLP exporter is chosen at start (a missing 'otel' extra fails here).
        self.telemetry = Telemetry(cfg.telemetry, self.health.snapshot, self.audit.lag if self.audit else None)
        self.alerts = BudgetAlerts(cfg.budgets, self.pool)
        self.release_hook = Webhook(self.pool, "release")
        # The counter store is chosen at start; a changed redis_url takes effect on restart.
        self.limiter: RateLimiter = RedisRateLimiter(cfg.redis_url) if cfg.redis_url else MemoryRateLimiter()
        self._tasks: list[asyncio.Task[None]] = []
        self.runtime = self._build(loaded)
        self._note_config("config.loaded", version=loaded.version, source=str(config_path or "embedded default"))
        # Registered once a runtime exists: its limits stage warmed what the start needed itself.
        self.keys.followers.append(self._warm_tokenizers)
        self.reloads = 0

    @classmethod
    def from_path(cls, path: str | Path | None) -> Gateway:
        if path is None:
            return cls(load_default())
        return cls(load_file(path), Path(path))

    def _build(self, loaded: LoadedConfig) -> Runtime:
        cfg = loaded.config
        router = Router(cfg, self.health, self.providers)
        identify = Identify(self.keys, TokenVerifier(cfg.identity.issuers, self.pool))
        authorize = Authorize.from_config(cfg.authorization, router.routes, loaded.version)
        # A concurrency slot's lease outlives the slowest possible call: it only frees the slots of
        # a replica that died.
        self.alerts.configure(cfg.budgets)
        self.release_hook.configure(cfg.releases.webhook_url, cfg.releases.webhook_secret)
        limits = LimitsStage(cfg, router.chains, self.limiter, self.book, self.meter, self.alerts,
                             lease_seconds=router.longest() + 60)
        guardrails = GuardrailsStage(cfg.guardrails, loaded.version, self.reviews) if cfg.guardrails.policies else None
        # The audit stage comes first: a request refused by any later stage still leaves its event.
        # Telemetry right after it: the trace id is set before any stage can refuse, and every end is counted.
        stages: list[Stage] = [*([AuditStage(self.audit)] if self.audit else []),
                               TelemetryStage(self.telemetry.metrics, self.telemetry.tracer, cfg, loaded.version),
                               identify, *([authorize] if authorize else []),
                               ReleaseStage(self.releases), PromptStage(self.prompts, cfg.server.max_messages),
                               limits, *([guardrails] if guardrails else [])]
        models = {"object": "list", "data": [model_card(r.name) for r in cfg.routes]}
        return Runtime(loaded, router, identify, compose(stages, router), loaded.version.encode(),
                       orjson.dumps(models), limits, guardrails)

    def _warm_tokenizers(self) -> None:
        # A budget or token limit set through the admin API: load the tokenizers before it is used.
        limits = self.runtime.limits
        if limits.counts_tokens(self.runtime.config):
            limits.warm()

    async def refused(self, call: Call, e: GatewayError) -> None:
        """Record a request refused before the pipeline (malformed, too large, unknown endpoint): its
        metrics, its trace id (its answer's traceparent) and its audit event."""
        e.headers = {**e.headers, "traceparent": self.telemetry.refused(call, e.status)}
        if self.audit is not None:
            await self.audit.record(describe(call, e.status, (e.code or e.type, e.message), None, time.perf_counter()))

    async def feedback(self, principal: Principal, raw: bytes) -> dict[str, object]:
        if self.audit is None:
            raise GatewayError("Feedback is linked to the audit trail, which is disabled on this gateway.",
                               status=404, type="invalid_request_error", code="audit_disabled")
        return await leave_feedback(self.audit, principal, raw, self._score_release)

    def _score_release(self, arms: list[dict[str, Any]], score: float) -> None:
        for a in arms:
            if not a.get("forced"):
                self.releases.score(str(a.get("id")), str(a.get("arm")), score)

    def reload(self) -> bool:
        """Load the config file again; on any error keep serving the current one. True if swapped."""
        if self.config_path is None:
            return False
        try:
            loaded = load_file(self.config_path)
        except ConfigError as e:
            log.error("config reload refused, still serving version %s: %s", self.runtime.version, e)
            # Where the problems are, not what they say: a message may quote a value of the file.
            self._note_config("config.refused", serving=self.runtime.version, source=str(self.config_path),
                              problems=[p.split(":", 1)[0] for p in e.problems][:50])
            return False
        if loaded.version == self.runtime.version:
            return False
        old, new = self.runtime.config, loaded.config
        old_version = self.runtime.version
        if (new.server, new.database_url, new.redis_url, new.identity.key_secret, new.budgets.timezone, new.audit) != (
                old.server, old.database_url, old.redis_url, old.identity.key_secret, old.budgets.timezone, old.audit):
            log.warning("server settings, database_url, redis_url, identity.key_secret, budgets.timezone or audit "
                        "changed: they take effect on restart")
        self.health.configure(loaded.config.breaker)
        self.runtime = self._build(loaded)
        self.reloads += 1
        log.info("config version %s loaded from %s", loaded.version, self.config_path)
        self._note_config("config.loaded", version=loaded.version, previous=old_version, source=str(self.config_path))
        return True

    def _note_config(self, action: str, **fields: object) -> None:
        if self.audit is not None:
            self.audit.record_nowait(notice("config", action=action, **fields))

    async def ready(self) -> tuple[bool, str]:
        # In a thread: a PostgreSQL round trip must not hold up the requests being served.
        if not await asyncio.to_thread(self.store.ping):
            return False, "the database does not answer"
        return True, "ready"

    def start(self) -> None:
        """Background work of a serving gateway: follow directory changes made by any replica, write
        usage."""
        every = self.runtime.config.identity.refresh_seconds
        self._tasks.append(asyncio.ensure_future(self.keys.refresh_forever(every)))
        self._tasks.append(asyncio.ensure_future(self.meter.flush_forever()))
        self._tasks.append(asyncio.ensure_future(self.book.refresh_forever()))
        self._tasks.append(asyncio.ensure_future(self._control_releases_forever()))
        if self.audit is not None:
            self.audit.start()
            self._tasks.append(asyncio.ensure_future(self._retain_forever()))

    async def _control_releases_forever(self, every: float = 1.0) -> None:
        """Store this replica's release counts and run the release controller (each replica does;
        a decision is a compare-and-set, so one replica makes it)."""
        while True:
            await asyncio.sleep(every)
            try:
                if self.releases.snapshot.active:
                    for d in await asyncio.to_thread(self.releases.tick):
                        log.log(logging.WARNING if d.action in ("rollback", "pause") else logging.INFO,
                                "release %s: %s (%s)", d.release.id, d.action, d.reason)
                        # Whoever must decide a paused release, or know of a rollback, hears of it.
                        self.release_hook.post({**d.event(), "at": time.time()})
            except Exception:
                log.warning("release controller run failed; next try in %s s", every, exc_info=True)

    async def _retain_forever(self, every: float = 3600.0) -> None:
        """Shred content past its retention time (each replica runs it; a second run finds nothing)."""
        assert self.subjects is not None
        while True:
            try:
                days = self.runtime.config.audit.retention.content_days
                await asyncio.to_thread(self.subjects.retain, days)
            except Exception:
                log.warning("audit retention run failed; next try in %s s", every, exc_info=True)
            await asyncio.sleep(every)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.meter.flush_soon()
        await asyncio.to_thread(self.releases.flush)
        await self.alerts.aclose()  # webhooks on their way get a moment to arrive
        await self.release_hook.aclose()
        await self.pool.aclose()
        await self.limiter.aclose()
        await asyncio.to_thread(self.telemetry.close)  # exports the spans still batched
        if self.audit is not None:
            await asyncio.to_thread(self.audit.close)
        self.store.close()


def model_card(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "ostiary"}
