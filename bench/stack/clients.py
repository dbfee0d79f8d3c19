"""Pooled keep-alive upstream clients with one shape: `await post(body: bytes) -> (status, bytes-like)`.

Built lazily inside the running event loop (first request), synchronously, so there is no creation race.
"""

import os

UPSTREAM_URL = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9001") + "/v1/chat/completions"
POOL = 256


def make_post(name: str):
    if name == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().build()  # Rust reqwest/hyper pool, tokio runtime in a background thread

        async def post(body):
            req = client.post(UPSTREAM_URL).header("content-type", "application/json").body_bytes(body).build()
            resp = await req.send()
            return resp.status, (await resp.bytes()).to_bytes()  # faster for orjson than memoryview()

    elif name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))
        hdrs = {"content-type": "application/json"}

        async def post(body):
            async with session.post(UPSTREAM_URL, data=body, headers=hdrs) as resp:
                return resp.status, await resp.read()

    elif name == "httpx":
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL))
        hdrs = {"content-type": "application/json"}

        async def post(body):
            resp = await client.post(UPSTREAM_URL, content=body, headers=hdrs)
            return resp.status_code, resp.content

    else:
        raise ValueError(name)
    return post
