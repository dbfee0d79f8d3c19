"""The shared upstream HTTP machinery: pooled keep-alive clients, timeouts and SSE reading.

pyreqwest (Rust reqwest) was the fastest client measured here (bench/README.md). One client per
(connect, first-token) timeout pair is shared by every deployment, so connections are pooled per
upstream host.

Timeouts are enforced inside reqwest, not by asyncio: pyreqwest does not abort a request whose
Python awaitable is cancelled (the Rust task runs on), so an asyncio timeout would leave the upstream
request running until its total timeout. reqwest's read timeout is the first-token timeout (and so
also bounds the silence between two chunks of a stream); its request timeout is the total.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError, RequestTimeoutError

from ostiary.config.schema import Timeouts
from ostiary.providers.base import Target, UpstreamFailure, failure_for_status


class HttpPool:
    def __init__(self) -> None:
        self._clients: dict[tuple[float, float], Client] = {}

    def client(self, t: Timeouts) -> Client:
        key = (t.connect, t.first_token)
        c = self._clients.get(key)
        if c is None:
            c = (
                ClientBuilder()
                .connect_timeout(timedelta(seconds=t.connect))
                .read_timeout(timedelta(seconds=t.first_token))
                .pool_idle_timeout(timedelta(seconds=90))
                .pool_max_idle_per_host(256)
                .tcp_keepalive(timedelta(seconds=30))
                .build()
            )
            self._clients[key] = c
        return c

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.close()
        self._clients.clear()


def _transport_failure(e: BaseException, what: str) -> UpstreamFailure:
    # reqwest reports a read timeout while waiting for headers as a connect timeout: one message.
    if isinstance(e, (RequestTimeoutError, TimeoutError)):
        return UpstreamFailure(f"{what}: timed out", kind="timeout")
    if isinstance(e, ConnectError):
        return UpstreamFailure(f"{what}: cannot connect", kind="connect")
    return UpstreamFailure(f"{what}: connection failed ({type(e).__name__})", kind="connect")


async def post_json(pool: HttpPool, target: Target, url: str, headers: dict[str, str],
                    body: dict[str, Any]) -> dict[str, Any]:
    t = target.timeouts
    req = (pool.client(t).post(url).headers(headers).body_bytes(orjson.dumps(body))
           .timeout(timedelta(seconds=t.total)).build())
    try:
        resp = await req.send()
        raw = await resp.bytes()
    except PyreqwestError as e:
        raise _transport_failure(e, "upstream") from None
    if resp.status >= 400:
        raise failure_for_status(resp.status, raw.to_bytes(), resp.get_header("retry-after"))
    try:
        data = orjson.loads(raw.to_bytes())
    except orjson.JSONDecodeError:
        raise UpstreamFailure("upstream answered with invalid JSON", kind="protocol") from None
    if not isinstance(data, dict):
        raise UpstreamFailure("upstream answered with a JSON value that is not an object", kind="protocol")
    return data


async def post_sse(pool: HttpPool, target: Target, url: str, headers: dict[str, str],
                   body: dict[str, Any]) -> AsyncIterator[list[tuple[str, bytes]]]:
    """POST and yield server-sent events as (event name, data bytes), one list per network read.

    Events that arrived together travel together to the client (one write, not one per event).

    Closing the generator (the client went away) exits the streamed request, which drops the
    upstream connection.
    """
    t = target.timeouts
    req = (pool.client(t).post(url).headers(headers).body_bytes(orjson.dumps(body))
           .timeout(timedelta(seconds=t.total)).streamed_read_buffer_limit(0).build_streamed())
    try:
        resp = await req.__aenter__()
    except PyreqwestError as e:
        raise _transport_failure(e, "upstream") from None
    try:
        if resp.status >= 400:
            try:
                raw = (await resp.bytes()).to_bytes()
            except PyreqwestError:
                raw = b""
            raise failure_for_status(resp.status, raw, resp.get_header("retry-after"))
        reader = resp.body_reader
        buf = b""
        while True:
            try:
                chunk = await reader.read_chunk()
            except PyreqwestError as e:
                f = _transport_failure(e, "upstream stream")
                f.kind = "timeout" if f.kind == "timeout" else "stream_cut"
                raise f from None
            if chunk is None:
                if buf.strip():
                    yield [_parse_event(buf)]
                return
            buf += chunk.to_bytes()
            if b"\r" in buf:
                buf = buf.replace(b"\r\n", b"\n")
            *blocks, buf = buf.split(b"\n\n")
            events = [_parse_event(b) for b in blocks if b.strip()]
            if events:
                yield events
    finally:
        await req.__aexit__(None, None, None)


def _parse_event(block: bytes) -> tuple[str, bytes]:
    event = "message"
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    return event, b"\n".join(data)
