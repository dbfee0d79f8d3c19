"""The gateway: the live configuration and everything built from it.

A `Runtime` is immutable and belongs to one config version: the router and the composed pipeline.
Reloading builds a new runtime and swaps one reference; a request keeps the runtime it started with,
so in-flight requests finish on the old config while new ones use the new. What must outlive a
reload (connection pools, deployment health, the store) lives on the `Gateway`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import orjson

from ostiary.config.load import ConfigError, LoadedConfig, load_default, load_file
from ostiary.pipeline.stage import Handler, compose
from ostiary.providers.anthropic import AnthropicProvider
from ostiary.providers.base import Provider
from ostiary.providers.http import HttpPool
from ostiary.providers.mock import MockProvider
from ostiary.providers.openai import AzureProvider, OpenAIProvider
from ostiary.routing.health import HealthBook
from ostiary.routing.router import Router
from ostiary.store import Store

log = logging.getLogger("ostiary")


@dataclass(frozen=True, slots=True)
class Runtime:
    loaded: LoadedConfig
    router: Router
    handle: Handler
    version_header: bytes
    models_body: bytes

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
        self.store = Store(loaded.config.server.data_dir)
        self.runtime = self._build(loaded)
        self.reloads = 0

    @classmethod
    def from_path(cls, path: str | Path | None) -> Gateway:
        if path is None:
            return cls(load_default())
        return cls(load_file(path), Path(path))

    def _build(self, loaded: LoadedConfig) -> Runtime:
        router = Router(loaded.config, self.health, self.providers)
        stages: list = []  # identity, limits, guardrails and audit stages join here in later issues
        models = {"object": "list", "data": [model_card(r.name) for r in loaded.config.routes]}
        return Runtime(loaded, router, compose(stages, router), loaded.version.encode(), orjson.dumps(models))

    def reload(self) -> bool:
        """Load the config file again; on any error keep serving the current one. True if swapped."""
        if self.config_path is None:
            return False
        try:
            loaded = load_file(self.config_path)
        except ConfigError as e:
            log.error("config reload refused, still serving version %s: %s", self.runtime.version, e)
            return False
        if loaded.version == self.runtime.version:
            return False
        if loaded.config.server != self.runtime.config.server:
            log.warning("server settings (host, port, data_dir, ...) changed: they take effect on restart")
        self.health.configure(loaded.config.breaker)
        self.runtime = self._build(loaded)
        self.reloads += 1
        log.info("config version %s loaded from %s", loaded.version, self.config_path)
        return True

    def ready(self) -> tuple[bool, str]:
        if not self.store.ping():
            return False, f"the database in {self.store.data_dir} does not answer"
        return True, "ready"

    async def aclose(self) -> None:
        await self.pool.aclose()
        self.store.close()


def model_card(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "ostiary"}
