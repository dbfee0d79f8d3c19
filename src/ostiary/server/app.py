"""The ASGI application: endpoints, error mapping and the response headers every answer carries.

Each request takes the gateway's current runtime once, at its start, and keeps it: a config reload
never changes a request half-way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ostiary.errors import GatewayError, InvalidRequest, NotFound
from ostiary.gateway import Gateway, Runtime, model_card
from ostiary.guardrails.service import scan as scan_service
from ostiary.pipeline.call import Api, Call, close_stream
from ostiary.server.io import (
    ClientGone,
    Headers,
    end_sse,
    parse_json_object,
    read_body,
    send_chunk,
    send_json,
    start_sse,
)
from ostiary.telemetry import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ostiary.telemetry import require_metrics_reader
from ostiary.wire.anthropic import check_messages
from ostiary.wire.openai import check_chat, check_embeddings
from ostiary.wire.translate import (
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)

log = logging.getLogger("ostiary.server")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class App:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # uvicorn runs with lifespan="off": only HTTP reaches the app.
        if scope["type"] == "http":
            await self.http(scope, receive, send)

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        rt = self.gateway.runtime
        rid = cl = credential = traceparent = None
        session: str | None = None
        release_arms: str | None = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v if _REQUEST_ID.match(v) else None
            elif k == b"content-length":
                cl = v
            elif k == b"authorization":
                scheme, _, token = v.partition(b" ")
                if scheme.lower() == b"bearer":
                    credential = token.strip().decode("latin-1")
            elif k == b"x-api-key" and credential is None:
                credential = v.strip().decode("latin-1")
            elif k == b"traceparent":
                traceparent = v
            elif k == b"x-ostiary-session":
                session = v.decode("latin-1")[:200]
            elif k == b"x-ostiary-release":
                release_arms = v.decode("latin-1")[:1000]
        client = scope.get("client")
        client_ip: str = client[0] if client else ""
        rid = rid or os.urandom(16).hex().encode()  # 128 random bits, as a uuid4 carries
        headers: Headers = [(b"x-request-id", rid), (b"x-ostiary-config-version", rt.version_header)]
        path: str = scope["path"]
        method: str = scope["method"]
        anthropic = path == "/v1/messages"
        try:
            if path.startswith("/admin/"):
                raw = await read_body(receive, rt.config.server.max_body_bytes, cl)
                principal = await rt.identify.principal(credential, client_ip)
                status, out = await self.gateway.admin.handle(method, path, scope.get("query_string", b"").decode(
                    "latin-1"), raw, principal)
                await send_json(send, status, orjson.dumps(out), headers)
            elif path == "/v1/guardrails/scan" and method == "POST":
                raw = await read_body(receive, rt.config.server.max_body_bytes, cl)
                call = Call(id=rid.decode(), api="openai.chat", body={}, model="", stream=False,
                            config_version=rt.version, client_ip=client_ip)
                call.principal = await rt.identify.principal(credential, client_ip)
                await send_json(send, 200, orjson.dumps(scan_service(rt.guardrails, raw, call)), headers)
            elif path == "/v1/feedback" and method == "POST":
                raw = await read_body(receive, rt.config.server.max_body_bytes, cl)
                principal = await rt.identify.principal(credential, client_ip)
                await send_json(send, 200, orjson.dumps(await self.gateway.feedback(principal, raw)), headers)
            elif method == "POST":
                api = _POST_APIS.get(path)
                if api is None:
                    raise NotFound(f"No endpoint at POST {path}.")
                try:
                    raw = await read_body(receive, rt.config.server.max_body_bytes, cl)
                    call = self._call(rt, api, parse_json_object(raw), rid.decode(), client_ip)
                except GatewayError as e:
                    refused = Call(id=rid.decode(), api=api, body={}, model="", stream=False,
                                   config_version=rt.version, client_ip=client_ip)
                    if traceparent is not None:
                        refused.decisions["traceparent"] = traceparent.decode("latin-1")
                    await self.gateway.refused(refused, e)
                    raise
                call.credential = credential
                call.session, call.release_arms = session, release_arms
                if traceparent is not None:  # parsed by the telemetry stage
                    call.decisions["traceparent"] = traceparent.decode("latin-1")
                await self._serve(rt, call, receive, send, headers)
            elif path == "/metrics" and method in ("GET", "HEAD"):
                if not rt.config.telemetry.metrics_public:
                    require_metrics_reader(await rt.identify.principal(credential, client_ip))
                exposition = await self.gateway.telemetry.scrape()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", METRICS_CONTENT_TYPE), *headers]})
                await send({"type": "http.response.body", "body": exposition})
            elif method in ("GET", "HEAD"):
                await self._get(rt, path, send, headers)
            else:
                raise GatewayError(f"Method {method} is not allowed here.", status=405,
                                   type="invalid_request_error", code="method_not_allowed")
        except ClientGone:
            return
        except GatewayError as e:
            body = e.to_anthropic() if anthropic else e.to_openai()
            extra = [(k.encode(), v.encode()) for k, v in e.headers.items()]
            await send_json(send, e.status, orjson.dumps(body), headers + extra)
        except Exception:
            log.exception("unexpected error on request %s", rid.decode())
            err = GatewayError(f"Internal error; the request id is {rid.decode()}.")
            await send_json(send, 500, orjson.dumps(err.to_anthropic() if anthropic else err.to_openai()), headers)

    def _call(self, rt: Runtime, api: Api, body: dict[str, Any], rid: str, client_ip: str) -> Call:
        limit = rt.config.server.max_messages
        if api == "openai.chat":
            if "prompt" in body or "variables" in body:
                # Rendered (and then checked) in the pipeline: which version depends on who asks.
                stream = _prompted(body)
            else:
                stream = bool(check_chat(body, max_messages=limit).stream)
        elif api == "openai.embeddings":
            check_embeddings(body)
            stream = False
        else:
            check_messages(body, max_messages=limit)
            stream = bool(body.get("stream"))
            body = anthropic_request_to_openai(body)
        return Call(id=rid, api=api, body=body, model=body["model"], stream=stream,
                    config_version=rt.version, client_ip=client_ip)

    async def _serve(self, rt: Runtime, call: Call, receive: Any, send: Any, headers: Headers) -> None:
        # ASGI servers report a vanished client through receive(), not by failing a send, so the
        # whole exchange runs under a watcher that cancels it (and the upstream call) on disconnect.
        try:
            await _cancel_on_disconnect(self._respond(rt, call, send, headers), receive)
        except ClientGone:
            call.error = "client disconnected"
            raise

    async def _respond(self, rt: Runtime, call: Call, send: Any, headers: Headers) -> None:
        await rt.handle(call)
        result = call.result
        if call.stream:
            assert result is not None and not isinstance(result, dict)
            await self._stream(call, result, send, headers)
            return
        assert isinstance(result, dict)
        if call.api == "anthropic.messages":
            result = openai_response_to_anthropic(result, call.model)
        call.status = 200
        cost = call.decisions.get("cost_usd")
        priced = [(b"x-ostiary-cost-usd", f"{cost:.8f}".encode())] if isinstance(cost, float | int) else []
        await send_json(send, 200, orjson.dumps(result), headers + call.response_headers + priced)

    async def _stream(self, call: Call, batches: AsyncIterator[list[dict[str, Any]]], send: Any,
                      headers: Headers) -> None:
        anthropic = call.api == "anthropic.messages"
        want_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        translator = OpenAIToAnthropicStream(call.model) if anthropic else None
        try:
            # Inside the try: a client gone before the first byte must still close (and settle) the stream.
            await start_sse(send, headers + call.response_headers)
            call.status = 200
            async for batch in batches:
                # One write per upstream read: the chunks that arrived together leave together.
                if translator is not None:
                    out = b"".join(_sse_event(e, d) for chunk in batch for e, d in translator.feed(chunk))
                else:
                    out = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in batch
                                   if want_usage or chunk.get("choices") or not chunk.get("usage"))
                if out:
                    await send_chunk(send, out)
        except Exception as raised:  # noqa: BLE001 - logged in _internal; the client gets an error event
            # Headers are gone: whatever went wrong can only end the stream, with an error event.
            e = raised if isinstance(raised, GatewayError) else _internal(raised)
            call.error = e.message
            body = e.to_anthropic() if anthropic else e.to_openai()
            await _try_send(send, _sse_event("error", body) if anthropic else b"data: " + orjson.dumps(body) + b"\n\n")
            await end_sse(send)
            return
        finally:
            await close_stream(batches)
        if translator is not None:
            tail = b"".join(_sse_event(e, d) for e, d in translator.finish())
        else:
            tail = b"data: [DONE]\n\n"
        await _try_send(send, tail)
        await end_sse(send)

    async def _get(self, rt: Runtime, path: str, send: Any, headers: Headers) -> None:
        if path == "/healthz":
            await send_json(send, 200, b'{"status":"alive"}', headers)
        elif path == "/readyz":
            ok, why = await self.gateway.ready()
            body = {"status": "ready" if ok else "not ready", "detail": why, "config_version": rt.version}
            await send_json(send, 200 if ok else 503, orjson.dumps(body), headers)
        elif path == "/v1/models":
            await send_json(send, 200, rt.models_body, headers)
        elif path.startswith("/v1/models/"):
            name = path[len("/v1/models/"):]
            if name not in rt.router.routes:
                raise NotFound(f"The model {name!r} does not exist on this gateway.", param="model",
                               code="model_not_found")
            await send_json(send, 200, orjson.dumps(model_card(name)), headers)
        else:
            raise NotFound(f"No endpoint at GET {path}.")


def _prompted(body: dict[str, Any]) -> bool:
    """What the pipeline needs of a request naming a prompt before it is rendered: its route and mode."""
    model, stream = body.get("model"), body.get("stream", False)
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required: the route to send the prompt to", param="model")
    if not isinstance(stream, bool) and stream is not None:
        raise InvalidRequest("stream must be true or false", param="stream")
    return bool(stream)


def _internal(e: Exception) -> GatewayError:
    log.error("a stream failed after its first byte", exc_info=e)
    return GatewayError("The gateway failed while streaming the answer; the answer is incomplete.", status=500,
                        type="api_error", code="internal_error")


_POST_APIS: dict[str, Api] = {
    "/v1/chat/completions": "openai.chat",
    "/v1/embeddings": "openai.embeddings",
    "/v1/messages": "anthropic.messages",
}


def _sse_event(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _try_send(send: Any, data: bytes) -> None:
    try:
        await send_chunk(send, data)
    except ClientGone:
        pass


async def _cancel_on_disconnect(work: Any, receive: Any) -> None:
    """Run `work`; if the client disconnects first, cancel it (and so the upstream request)."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if gone:
            raise ClientGone() from None
        raise
    finally:
        watcher.cancel()
