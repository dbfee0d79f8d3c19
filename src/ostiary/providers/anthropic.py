"""Anthropic Messages API upstream: canonical (OpenAI-format) calls translated both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ostiary.errors import InvalidRequest
from ostiary.providers.base import Target, UpstreamFailure
from ostiary.providers.http import HttpPool, post_json, post_sse
from ostiary.wire.translate import (
    AnthropicToOpenAIStream,
    anthropic_response_to_openai,
    openai_request_to_anthropic,
)

ANTHROPIC_DEFAULT_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool

    def _url(self, target: Target) -> str:
        return f"{target.deployment.api_base or ANTHROPIC_DEFAULT_BASE}/v1/messages"

    def _headers(self, target: Target) -> dict[str, str]:
        d = target.deployment
        h = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION, **d.headers}
        if d.api_key is not None:
            h["x-api-key"] = d.api_key.get_secret_value()
        return h

    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        payload = openai_request_to_anthropic(body, target.deployment.model)
        msg = await post_json(self.pool, target, self._url(target), self._headers(target), payload)
        return anthropic_response_to_openai(msg)

    async def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        payload = openai_request_to_anthropic(body, target.deployment.model)
        payload["stream"] = True
        # Usage is always produced so tokens can be accounted; the server drops it if not asked for.
        translator = AnthropicToOpenAIStream(include_usage=True)
        stopped = False
        async for events in post_sse(self.pool, target, self._url(target), self._headers(target), payload):
            chunks: list[dict[str, Any]] = []
            for event, data in events:
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamFailure("upstream sent an invalid stream event", kind="protocol") from None
                if event == "error" or not isinstance(parsed, dict) or parsed.get("type") == "error":
                    raise UpstreamFailure("upstream reported an error mid-stream", kind="stream_error")
                chunks += translator.feed(event, parsed)
                if event == "message_stop":
                    stopped = True
                    break
            if chunks:
                yield chunks
            if stopped:
                break
        if not stopped:
            raise UpstreamFailure("upstream stream ended before message_stop", kind="stream_cut")

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        raise InvalidRequest("this route's Anthropic deployment does not serve embeddings", param="model")

    async def aclose(self) -> None:
        return None
