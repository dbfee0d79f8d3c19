"""Minimal RSGI proxy (granian RSGI): parse, replace model, forward, parse, return."""

import os

import orjson
from clients import make_post
from payloads import UPSTREAM_MODEL

CLIENT = os.environ.get("BENCH_CLIENT", "pyreqwest")
_post = None


async def app(scope, proto):
    global _post
    if _post is None:
        _post = make_post(CLIENT)
    req = orjson.loads(await proto())
    req["model"] = UPSTREAM_MODEL
    status, data = await _post(orjson.dumps(req))
    out = orjson.dumps(orjson.loads(data))
    proto.response_bytes(status, [("content-type", "application/json")], out)
