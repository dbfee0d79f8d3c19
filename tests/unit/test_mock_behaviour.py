"""The built-in mock's configured behaviour: known answers by pattern (plain and streamed) and
failures injected at an exact rate; settings refused on other providers."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from ostiary.config.schema import Deployment, Timeouts
from ostiary.providers.base import Target, UpstreamFailure
from ostiary.providers.mock import MockProvider


def _target(**mock: object) -> Target:
    return Target(Deployment(provider="mock", model="mock-1", mock=mock), Timeouts())  # type: ignore[arg-type]


def _body(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_known_answers_by_pattern_else_the_echo() -> None:
    target = _target(answers=[{"when": r"capital of (the )?France", "reply": "Paris."}, {"when": ".", "reply": "?"}])
    provider = MockProvider()
    answer = asyncio.run(provider.chat(_body("What is the capital of France?"), target))
    assert answer["choices"][0]["message"]["content"] == "Paris."
    assert asyncio.run(provider.chat(_body("anything"), target))["choices"][0]["message"]["content"] == "?"
    plain = asyncio.run(provider.chat(_body("hello"), _target()))
    assert plain["choices"][0]["message"]["content"] == "Mock answer to: hello"

    async def streamed() -> str:
        parts = []
        async for batch in provider.stream(_body("capital of France"), target):
            parts += [c["choices"][0]["delta"].get("content") or "" for c in batch if c.get("choices")]
        return "".join(parts)

    assert asyncio.run(streamed()) == "Paris."


def test_failures_come_at_the_exact_rate() -> None:
    target = _target(error_rate=0.25, error_status=503)
    provider = MockProvider()
    outcomes = []
    for _ in range(20):
        try:
            asyncio.run(provider.chat(_body("hi"), target))
            outcomes.append("ok")
        except UpstreamFailure as e:
            assert e.status == 503 and e.retryable
            outcomes.append("fail")
    assert outcomes.count("fail") == 5 and outcomes[:4] == ["ok", "ok", "ok", "fail"]


def test_mock_settings_belong_to_the_mock_provider() -> None:
    with pytest.raises(ValidationError, match="provider mock only"):
        Deployment(provider="openai", model="x", api_base="https://api.example.com/v1", mock={"error_rate": 1})
    with pytest.raises(ValidationError, match="not a regular expression"):
        Deployment(provider="mock", model="m", mock={"answers": [{"when": "(", "reply": "x"}]})
