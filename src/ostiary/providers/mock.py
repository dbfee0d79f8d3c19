"""The built-in mock model: deterministic answers without any upstream, for a first try and tests.

It answers like an OpenAI-compatible server (chat, streaming, tool calls, JSON mode, embeddings)
using the same answer generator as `ostiary mock-upstream`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ostiary.mockup import answers
from ostiary.providers.base import Target


class MockProvider:
    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return answers.chat_completion(body, model=target.deployment.model)

    async def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        opts = {**(body.get("stream_options") or {}), "include_usage": True}
        chunks = answers.chat_chunks({**body, "stream_options": opts}, model=target.deployment.model)
        # Like a fast upstream: a few chunks per network read.
        for i in range(0, len(chunks), 8):
            yield chunks[i:i + 8]
            await asyncio.sleep(0)  # let a disconnect or cancellation be noticed between reads

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return answers.embeddings(body, model=target.deployment.model)

    async def aclose(self) -> None:
        return None
