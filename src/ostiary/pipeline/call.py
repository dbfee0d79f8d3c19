"""The `Call`: one request as a value, carried through the pipeline.

Stages read and write it; nothing about the HTTP framework is in it. What the audit trail will need
(ids, principal, route, every routing attempt, the deployment that answered, usage, timings) is kept
here as the call proceeds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Api = Literal["openai.chat", "anthropic.messages", "openai.embeddings"]


@dataclass(slots=True)
class Attempt:
    route: str
    deployment: str
    started: float
    duration: float = 0.0
    status: int | None = None  # upstream HTTP status, if one was received
    error: str | None = None  # a short, credential-free description
    outcome: Literal["ok", "retry", "next", "failed", "skipped"] = "ok"


@dataclass(slots=True)
class Call:
    id: str
    api: Api
    body: dict[str, Any]  # the request in the OpenAI (canonical) format
    model: str  # what the client asked for: a route name
    stream: bool
    config_version: str
    client_ip: str = ""
    credential: str | None = field(default=None, repr=False)  # the bearer/x-api-key value; never logged
    principal: Any = None  # set by the identity stage
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    attempts: list[Attempt] = field(default_factory=list)
    route: str | None = None  # the route that answered (may be a fallback)
    deployment: str | None = None  # the deployment that answered
    upstream_model: str | None = None
    usage: dict[str, Any] | None = None
    first_byte: float | None = None  # perf_counter when the first byte was ready for the client
    status: int = 0
    error: str | None = None
    result: dict[str, Any] | AsyncIterator[list[dict[str, Any]]] | None = None  # a stream: batches of chunks
    decisions: dict[str, Any] = field(default_factory=dict)  # per-stage records for the audit trail
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # added by stages
    # Set by the guardrails when they restore redacted values in the answer: puts the placeholders
    # back, so that the audit record keeps the redacted form of the answer as it does of the prompt.
    conceal: Callable[[str], str] | None = field(default=None, repr=False)
    # The prompt as the client sent it, kept only when a guardrail policy says `audit_raw` (it then
    # goes, encrypted, into the audit event beside the redacted form).
    raw_request: Any = field(default=None, repr=False)
    session: str | None = None  # the x-ostiary-session header: the unit of a release's sticky assignment
    release_arms: str | None = None  # the x-ostiary-release header: "ID=candidate", admins only (eval runs)
    # Run once when the call has ended (answer sent, stream finished or cut, or refused), with its
    # status; the telemetry stage, which sees every end, runs them. A hook must not raise.
    on_end: list[Callable[[Call, int], None]] = field(default_factory=list, repr=False)

    def ended(self, status: int) -> None:
        for hook in self.on_end:
            hook(self, status)

    @property
    def served_route(self) -> str:
        """The route whose deployments answer: the one asked for, or the one a release points it to
        (llmops/releases.py puts the pointers in `decisions`)."""
        pointers = self.decisions.get("pointers")
        return pointers.get(f"route:{self.model}", self.model) if pointers else self.model

    @property
    def kind(self) -> Literal["chat", "embeddings"]:
        return "embeddings" if self.api == "openai.embeddings" else "chat"


async def close_stream(batches: Any) -> None:
    """Close a streamed result (stages wrap it; each wrapper closes what it wraps), if it can be."""
    close = getattr(batches, "aclose", None)
    if close is not None:
        await close()
