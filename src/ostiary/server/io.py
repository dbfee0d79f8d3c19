"""Raw ASGI input and output: read a bounded body, send JSON, send server-sent events.

The gateway speaks ASGI directly (served by uvicorn): a framework would add a few microseconds a
request for routing and request objects the gateway does not need.
"""

from __future__ import annotations

from typing import Any

import orjson

from ostiary.errors import BodyTooLarge, InvalidRequest

Headers = list[tuple[bytes, bytes]]
JSON = (b"content-type", b"application/json")
SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
       (b"x-accel-buffering", b"no")]


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


async def read_body(receive: Any, limit: int, content_length: bytes | None) -> bytes:
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidRequest("Content-Length is not a number") from None
        if declared > limit:
            raise BodyTooLarge(f"The request body is {declared} bytes; this gateway accepts at most {limit}.")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        body = msg.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise BodyTooLarge(f"The request body exceeds {limit} bytes, the most this gateway accepts.")
            chunks.append(body)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        reason = "it is not valid UTF-8" if "utf-8" in str(e).lower() else str(e)
        raise InvalidRequest(f"The request body is not valid JSON: {reason}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


async def send_json(send: Any, status: int, body: bytes, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [JSON, *headers]})
    await send({"type": "http.response.body", "body": body})


async def start_sse(send: Any, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE, *headers]})


async def send_chunk(send: Any, data: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    except Exception as e:  # a server may report a vanished client by failing the send
        raise ClientGone() from e


async def end_sse(send: Any) -> None:
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except Exception:  # noqa: BLE001, S110 - the client left; there is nobody to tell
        pass
