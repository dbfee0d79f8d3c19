"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, TGI, Mistral, Groq, ...),
plus Azure OpenAI, which speaks the same format on a different URL with a different key header.

The body is forwarded as the client sent it (unknown fields pass through); only `model` is set to
the deployment's upstream model, and streams always ask for usage so tokens can be accounted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ostiary.providers.base import Target, UpstreamFailure
from ostiary.providers.http import HttpPool, post_json, post_sse
from ostiary.wire.translate import EXTRA

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"


class OpenAIProvider:
    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool

    def url(self, target: Target, path: str) -> str:
        return f"{target.deployment.api_base or OPENAI_DEFAULT_BASE}/{path}"

    def headers(self, target: Target) -> dict[str, str]:
        d = target.deployment
        h = {"content-type": "application/json", **d.headers}
        if d.api_key is not None:
            h["authorization"] = f"Bearer {d.api_key.get_secret_value()}"
        return h

    def prepare(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k != EXTRA}
        out["model"] = target.deployment.model
        return out

    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return await post_json(self.pool, target, self.url(target, "chat/completions"), self.headers(target),
                               self.prepare(body, target))

    async def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]:
        payload = self.prepare(body, target)
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        done = False
        async for events in post_sse(self.pool, target, self.url(target, "chat/completions"),
                                     self.headers(target), payload):
            chunks = []
            for _event, data in events:
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamFailure("upstream sent an invalid stream event", kind="protocol") from None
                if not isinstance(chunk, dict) or "error" in chunk:
                    raise UpstreamFailure("upstream reported an error mid-stream", kind="stream_error")
                chunks.append(chunk)
            if chunks:
                yield chunks
            if done:
                break
        if not done:
            raise UpstreamFailure("upstream stream ended before [DONE]", kind="stream_cut")

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return await post_json(self.pool, target, self.url(target, "embeddings"), self.headers(target),
                               self.prepare(body, target))

    async def aclose(self) -> None:
        return None


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: `{api_base}/openai/deployments/{deployment}/{path}?api-version=...`, `api-key`."""

    def url(self, target: Target, path: str) -> str:
        d = target.deployment
        return f"{d.api_base}/openai/deployments/{d.model}/{path}?api-version={d.api_version}"

    def headers(self, target: Target) -> dict[str, str]:
        d = target.deployment
        h = {"content-type": "application/json", **d.headers}
        if d.api_key is not None:
            h["api-key"] = d.api_key.get_secret_value()
        return h

    def prepare(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        # Azure selects the model by the deployment in the URL; the body's model is ignored.
        return {k: v for k, v in body.items() if k not in (EXTRA, "model")}
