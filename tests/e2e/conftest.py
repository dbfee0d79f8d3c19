"""Fixtures: a real mock upstream and a real gateway process configured against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import MockUpstream, gateway

UPSTREAM_KEY = "sk-upstream-secret-1234"


def api_config(up: str, data_dir: Path, breaker_min: int = 1000) -> str:
    # A high breaker threshold by default, so that tests injecting failures do not open circuits
    # for each other; the breaker test runs its own gateway.
    return f"""
server: {{data_dir: {data_dir}, max_body_bytes: 65536, max_messages: 500}}
retry: {{attempts: 2, backoff_base: 0.01, backoff_max: 0.05, retry_after_max: 2}}
breaker: {{failure_ratio: 0.5, window: 30, min_requests: {breaker_min}, cooldown: 1}}
routes:
  - name: mock-1
    deployments: [{{provider: mock, model: mock-1}}]
  - name: gpt
    deployments:
      - {{provider: openai, model: gpt-up, api_base: "{up}/v1", api_key: {UPSTREAM_KEY}}}
  - name: azure
    deployments:
      - {{provider: azure, model: az-dep, api_base: "{up}", api_version: "2024-10-21", api_key: {UPSTREAM_KEY}}}
  - name: claude
    deployments:
      - {{provider: anthropic, model: claude-up, api_base: "{up}", api_key: {UPSTREAM_KEY}}}
  - name: flaky
    strategy: priority
    deployments:
      - {{provider: openai, id: flaky-a, model: flaky-a, api_base: "{up}/v1", priority: 0}}
      - {{provider: openai, id: flaky-b, model: flaky-b, api_base: "{up}/v1", priority: 1}}
  - name: lonely
    fallbacks: [gpt]
    deployments:
      - {{provider: openai, id: lonely, model: lonely, api_base: "{up}/v1"}}
  - name: breaker
    deployments:
      - {{provider: openai, id: brk, model: brk, api_base: "{up}/v1"}}
  - name: slow
    retry: {{attempts: 1}}
    deployments:
      - {{provider: openai, id: slow, model: slow, api_base: "{up}/v1",
          timeouts: {{connect: 1, first_token: 0.5, total: 2}}}}
  - name: dead
    retry: {{attempts: 1}}
    deployments:
      - {{provider: openai, id: dead, model: dead, api_base: "http://127.0.0.1:9/v1"}}
"""


@pytest.fixture(scope="session")
def upstream(mockup: MockUpstream) -> str:
    return mockup.url


@pytest.fixture(scope="session")
def gw(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("gw")
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(api_config(upstream, tmp / "data"))
    with gateway(cfg) as (url, _proc):
        yield url


@pytest.fixture
def mock(upstream: str) -> Iterator[httpx.Client]:
    """The mock upstream's control API, reset before and after each test."""
    with httpx.Client(base_url=upstream, timeout=5) as c:
        c.post("/_mock/reset").raise_for_status()
        yield c
        c.post("/_mock/reset").raise_for_status()
