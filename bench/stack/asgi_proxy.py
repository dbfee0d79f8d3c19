"""Minimal ASGI proxy (granian ASGI embedded/CLI, uvicorn): parse, replace model, forward, parse, return."""

import os

import orjson
from clients import make_post
from payloads import UPSTREAM_MODEL

CLIENT = os.environ.get("BENCH_CLIENT", "pyreqwest")
_post = None


async def app(scope, receive, send):
    global _post
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if _post is None:
        _post = make_post(CLIENT)
    chunks, more = [], True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    req = orjson.loads(b"".join(chunks))
    req["model"] = UPSTREAM_MODEL
    status, data = await _post(orjson.dumps(req))
    out = orjson.dumps(orjson.loads(data))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
