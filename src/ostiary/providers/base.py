"""What every provider offers the router, and how upstream failures are described.

A provider speaks one upstream API family. It takes a call body in the OpenAI (canonical) format and
returns the answer in that format: a completion dict, an async iterator of chunk dicts (in lists:
the chunks that arrived together), or an embeddings dict. Failures are `UpstreamFailure`s, which say whether another try could help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ostiary.config.schema import Deployment, Timeouts


class UpstreamFailure(Exception):
    """An upstream call failed. `message` never contains a credential or a request body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        client_fault: bool = False,
        kind: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        # The upstream refused the request itself (400/413/422): another deployment would too.
        self.client_fault = client_fault
        self.kind = kind  # "timeout", "connect", "status", "stream_cut", "protocol", ...


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment ready to call: its settings and its effective timeouts."""

    deployment: Deployment
    timeouts: Timeouts


class Provider(Protocol):
    async def chat(self, body: dict[str, Any], target: Target) -> dict[str, Any]: ...

    def stream(self, body: dict[str, Any], target: Target) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def embeddings(self, body: dict[str, Any], target: Target) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def failure_for_status(status: int, body: bytes, retry_after: str | None) -> UpstreamFailure:
    """Map an upstream HTTP error to a failure; the upstream's own message is kept (it is theirs,
    not ours, and says what was wrong), cut short, and never includes our request."""
    detail = _upstream_message(body)
    after = parse_retry_after(retry_after)
    if status == 429:
        return UpstreamFailure(f"upstream rate limited (429){detail}", status=status, retry_after=after)
    if status in (408, 409) or status >= 500:
        return UpstreamFailure(f"upstream error {status}{detail}", status=status, retry_after=after)
    if status in (401, 403):
        return UpstreamFailure(f"upstream refused the gateway's credentials ({status})", status=status,
                               retryable=False)
    if status == 404:
        return UpstreamFailure(f"upstream does not know the model or path (404){detail}", status=status,
                               retryable=False)
    return UpstreamFailure(f"upstream rejected the request ({status}){detail}", status=status,
                           retryable=False, client_fault=True)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: rare from LLM APIs; fall back to our own backoff


def _upstream_message(body: bytes) -> str:
    import orjson

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    err = data.get("error") if isinstance(data, dict) else None
    msg = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
    if not msg:
        return ""
    return f": {str(msg)[:300]}"
