"""The built-in mock model: deterministic answers without any upstream, for a first try and tests.

It answers like an OpenAI-compatible server (chat, streaming, tool calls, JSON mode, embeddings)
using the same answer generator as `ostiary mock-upstream`. A deployment's `mock:` settings give it
known answers (the first `when` pattern found in the last user message gives the reply) and inject
failures at an exact rate (`error_rate` 0.25: every fourth call of that deployment fails with
`error_status`), for evaluation suites, red-team runs and release drills.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from ostiary.config.schema import MockBehaviour
from ostiary.mockup import answers
from ostiary.providers.base import Target, UpstreamFailure


class MockProvider:
    def __init__(self) -> None:
        self._calls: dict[str, int] = {}  # per deployment: calls so far, for the exact error rate
        self._patterns: dict[str, re.Pattern[str]] = {}

    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        reply = self._behave(body, target)
        return answers.chat_completion(body, model=target.deployment.model, reply=reply)

    async def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        reply = self._behave(body, target)
        opts = {**(body.get("stream_options") or {}), "include_usage": True}
        chunks = answers.chat_chunks({**body, "stream_options": opts}, model=target.deployment.model, reply=reply)
        # Like a fast upstream: a few chunks per network read.
        for i in range(0, len(chunks), 8):
            yield chunks[i:i + 8]
            await asyncio.sleep(0)  # let a disconnect or cancellation be noticed between reads

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return answers.embeddings(body, model=target.deployment.model)

    async def aclose(self) -> None:
        return None

    def _behave(self, body: dict[str, Any], target: Target) -> str | None:
        """Raise the injected failure if this call is one, else the known reply (None: the echo)."""
        mock: MockBehaviour | None = target.deployment.mock
        if mock is None:
            return None
        if mock.error_rate:
            name = target.deployment.name
            n = self._calls[name] = self._calls.get(name, 0) + 1
            # Fails exactly when the running count of due failures steps up: an exact, even rate.
            if int(n * mock.error_rate) > int((n - 1) * mock.error_rate):
                raise UpstreamFailure(f"injected failure ({mock.error_status}) by the mock's error_rate",
                                      status=mock.error_status, retryable=mock.error_status >= 500, kind="status")
        if mock.answers:
            text = answers.last_user_text(body.get("messages") or [])
            for answer in mock.answers:
                pattern = self._patterns.get(answer.when)
                if pattern is None:
                    pattern = self._patterns[answer.when] = re.compile(answer.when)
                if pattern.search(text):
                    return answer.reply
        return None
