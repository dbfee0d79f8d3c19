"""Raw ASGI fake upstream: POST /v1/chat/completions -> fixed chat.completion JSON (run on granian)."""

from payloads import RESPONSE_BYTES

OK_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(RESPONSE_BYTES)).encode())]
START_OK = {"type": "http.response.start", "status": 200, "headers": OK_HEADERS}
BODY_OK = {"type": "http.response.body", "body": RESPONSE_BYTES}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # drain the request body
        more = (await receive()).get("more_body", False)
    if scope["method"] == "POST" and scope["path"] == "/v1/chat/completions":
        await send(START_OK)
        await send(BODY_OK)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
