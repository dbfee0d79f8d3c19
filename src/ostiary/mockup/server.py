"""A fast, standalone fake LLM upstream (OpenAI, Azure OpenAI and Anthropic wire formats).

It is a raw ASGI app served by uvicorn (httptools, uvloop) in its own process; tests and
benchmarks point the gateway at it instead of a real provider. Answers come from
:mod:`ostiary.mockup.answers` (deterministic, shared with the gateway's ``mock`` provider).

Endpoints::

    POST /v1/chat/completions                       OpenAI chat (SSE when "stream": true)
    POST /v1/embeddings                             OpenAI embeddings
    GET  /v1/models                                 OpenAI model list
    POST /openai/deployments/{dep}/chat/completions Azure OpenAI (needs api-key header
    POST /openai/deployments/{dep}/embeddings        and ?api-version=...; model = dep)
    POST /v1/messages                               Anthropic Messages (needs x-api-key and
                                                    anthropic-version headers)
    POST /_mock/behaviour  {"model", "fail", "times", "retry_after", "delay_ms"}
    POST /_mock/reset      clear behaviours and counters
    GET  /_mock/stats      {"requests", "by_model", "by_path", "last_headers", "last_body"}
    GET  /_mock/health     {"status": "ok"}

Failure modes (``--fail-mode`` with ``--fail-rate``, or ``"fail"`` in the control API):
``"429"`` (with Retry-After), ``"500"``, ``"503"`` (any other 4xx/5xx code works too),
``"reset"``, ``"timeout"``, ``"cut"`` and ``"slow_first_token"``. Failures are injected
only on the model-bearing endpoints (chat, embeddings, messages), never on /v1/models.

Why "reset" sends a status line: an ASGI server answers "500 Internal server error" itself
when an app fails or returns before starting its response, so an ASGI app cannot drop a
connection before the status line. "reset" therefore commits a 200 head with a chunked
body and closes the connection without finishing it: HTTP clients (httpx and so the
openai/anthropic SDKs, reqwest) report a connection/protocol error, never a usable 200.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ostiary.mockup import answers

__all__ = [
    "FAIL_MODES",
    "MockApp",
    "MockSettings",
    "add_arguments",
    "create_app",
    "is_fail_mode",
    "run",
    "settings_from_args",
]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FAIL_MODES = ("429", "500", "503", "reset", "timeout", "cut", "slow_first_token")
TIMEOUT_SECONDS = 3600.0  # "timeout" mode: far longer than any sane client timeout
CUT_AFTER_FRAMES = 3  # "cut" mode: SSE frames sent before the connection is dropped
CUT_PAUSE_SECONDS = 0.05  # "cut" mode: pause between those frames and the drop


@dataclass
class MockSettings:
    """How the mock upstream behaves when no control-API behaviour applies."""

    # Delay before the response head (before the first byte) of every answer; injected
    # failures answer at once, like a real rate limiter or crashing upstream.
    latency_ms: float = 0.0
    tokens_per_second: float = 0.0  # 0 = unlimited; paces SSE frames / delays full answers
    fail_rate: float = 0.0  # 0..1, probability that a request fails with fail_mode
    fail_mode: str = "500"
    retry_after: float = 1.0  # seconds, sent as Retry-After on 429
    delay_ms: float = 1000.0  # first-token delay of the "slow_first_token" mode
    require_key: str | None = None  # exact key expected in bearer / api-key / x-api-key
    seed: int | None = None  # seed of the random failure draw
    models: tuple[str, ...] = field(default=("mock-small", "mock-large", "mock-embedding"))


def is_fail_mode(value: Any) -> bool:
    """True for a named failure mode or an HTTP error status code given as a string."""
    if value in FAIL_MODES:
        return True
    return isinstance(value, str) and value.isdigit() and 400 <= int(value) <= 599


@dataclass(slots=True)
class _Behaviour:
    fail: str
    times: int | None  # None = until reset
    retry_after: float
    delay_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "fail": self.fail,
            "times": self.times,
            "retry_after": self.retry_after,
            "delay_ms": self.delay_ms,
        }


# Route kinds
_CHAT, _EMBED, _MESSAGES, _MODELS = "chat", "embeddings", "messages", "models"
_CTL_BEHAVIOUR, _CTL_RESET, _CTL_STATS, _CTL_HEALTH = "ctl_behaviour", "ctl_reset", "ctl_stats", "ctl_health"

_ROUTES: dict[str, tuple[str, str]] = {
    # path -> (kind, method)
    "/v1/chat/completions": (_CHAT, "POST"),
    "/v1/embeddings": (_EMBED, "POST"),
    "/v1/messages": (_MESSAGES, "POST"),
    "/v1/models": (_MODELS, "GET"),
    "/_mock/behaviour": (_CTL_BEHAVIOUR, "POST"),
    "/_mock/reset": (_CTL_RESET, "POST"),
    "/_mock/stats": (_CTL_STATS, "GET"),
    "/_mock/health": (_CTL_HEALTH, "GET"),
}
_AZURE_PREFIX = "/openai/deployments/"
_AZURE_OPS = {"chat/completions": _CHAT, "embeddings": _EMBED}

# Precomputed ASGI messages and headers: the hot path only fills in bodies.
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")],
}
_EMPTY_MORE: Message = {"type": "http.response.body", "body": b"", "more_body": True}
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
_DONE = b"data: [DONE]\n\n"

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _retry_after_headers(seconds: float) -> list[tuple[bytes, bytes]]:
    # Retry-After in (possibly fractional) seconds, plus the retry-after-ms the OpenAI SDK
    # prefers, so tests can use sub-second back-offs.
    return [
        (b"retry-after", f"{seconds:g}".encode()),
        (b"retry-after-ms", str(int(seconds * 1000)).encode()),
    ]


async def _read_body(receive: Receive) -> bytes:
    msg = await receive()
    body: bytes = msg.get("body", b"")
    if not msg.get("more_body"):
        return body
    parts = [body]
    while msg.get("more_body"):
        msg = await receive()
        parts.append(msg.get("body", b""))
    return b"".join(parts)


async def _wait_disconnect(receive: Receive) -> None:
    # Some servers hand out an empty http.request after the body; http.disconnect comes after.
    while (await receive())["type"] != "http.disconnect":
        pass


class MockApp:
    """The ASGI application. One instance holds the behaviours and the counters."""

    def __init__(self, settings: MockSettings | None = None) -> None:
        self.settings = settings or MockSettings()
        self._rng = random.Random(self.settings.seed)
        self._behaviours: dict[str, _Behaviour] = {}
        # Tasks currently sleeping on purpose (latency, pacing, timeout): cancelled on
        # shutdown, since the server waits for in-flight requests before exiting.
        self._sleepers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.active = 0
        self._models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "ostiary-mock"}
                    for m in self.settings.models
                ],
            }
        )
        self.reset()

    # ------------------------------------------------------------------ bookkeeping

    def reset(self) -> None:
        """Clear behaviours and counters (and re-seed the failure draw)."""
        self._behaviours.clear()
        self._rng.seed(self.settings.seed)
        self.requests = 0
        self.by_model: dict[str, int] = {}
        self.by_path: dict[str, int] = {}
        # Raw values only; decoded when /_mock/stats is asked, to keep requests cheap.
        self._last_headers: list[tuple[bytes, bytes]] = []
        self._last_body: bytes = b""

    def stats(self) -> dict[str, Any]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self._last_headers}
        last_body: Any = None
        if self._last_body:
            try:
                last_body = orjson.loads(self._last_body)
            except orjson.JSONDecodeError:
                last_body = self._last_body.decode("utf-8", "replace")
        return {
            "requests": self.requests,
            "active": self.active - 1,  # not counting the /_mock/stats request asking
            "by_model": dict(self.by_model),
            "by_path": dict(self.by_path),
            "last_headers": headers,
            "last_body": last_body,
            "behaviours": {m: b.as_dict() for m, b in self._behaviours.items()},
        }

    def set_behaviour(self, spec: Any) -> dict[str, Any]:
        """Apply a control-API behaviour spec; raises ValueError when it is invalid."""
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")  # noqa: TRY004 - reported as a 400 like the rest
        model = spec.get("model", "*")
        if not isinstance(model, str) or not model:
            raise ValueError("'model' must be a non-empty string (or '*')")
        fail = spec.get("fail")
        if fail is None:
            self._behaviours.pop(model, None)
            return {"ok": True, "model": model, "behaviour": None}
        if isinstance(fail, int) and not isinstance(fail, bool):
            fail = str(fail)
        if not is_fail_mode(fail):
            raise ValueError(f"'fail' must be one of {', '.join(FAIL_MODES)}, a 4xx/5xx code, or null")
        times = spec.get("times")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("'times' must be a positive integer or null")
        retry_after = spec.get("retry_after", self.settings.retry_after)
        delay_ms = spec.get("delay_ms", self.settings.delay_ms)
        for name, value in (("retry_after", retry_after), ("delay_ms", delay_ms)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"'{name}' must be a non-negative number")
        behaviour = _Behaviour(fail, times, float(retry_after), float(delay_ms))
        self._behaviours[model] = behaviour
        return {"ok": True, "model": model, "behaviour": behaviour.as_dict()}

    def _pick_failure(self, model: str) -> _Behaviour | None:
        """The failure for this request: control-API behaviour first, then the random draw."""
        if self._behaviours:
            key = model if model in self._behaviours else "*"
            behaviour = self._behaviours.get(key)
            if behaviour is not None:
                if behaviour.times is not None:
                    behaviour.times -= 1
                    if behaviour.times <= 0:
                        del self._behaviours[key]
                return behaviour
        s = self.settings
        if s.fail_rate > 0 and self._rng.random() < s.fail_rate:
            return _Behaviour(s.fail_mode, None, s.retry_after, s.delay_ms)
        return None

    def cancel_sleepers(self) -> None:
        """Cancel requests that are sleeping on purpose, so shutdown is not held up."""
        self._closing = True
        for task in list(self._sleepers):
            task.cancel()

    async def _sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is None:
            await asyncio.sleep(seconds)
            return
        self._sleepers.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleepers.discard(task)

    # ------------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind_ = scope["type"]
        if kind_ == "http":
            # `active` lets tests see that a gateway dropped an upstream request (client disconnect).
            self.active += 1
            try:
                await self._http(scope, receive, send)
            except asyncio.CancelledError:
                if not self._closing:
                    raise
                # Cut short by shutdown (see cancel_sleepers): end quietly, no traceback.
            finally:
                self.active -= 1
        elif kind_ == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.cancel_sleepers()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        deployment: str | None = None
        route = _ROUTES.get(path)
        if route is not None:
            kind, want_method = route
        elif path.startswith(_AZURE_PREFIX):
            deployment, _, op = path[len(_AZURE_PREFIX) :].partition("/")
            kind = _AZURE_OPS.get(op, "")
            want_method = "POST"
            if not kind or not deployment:
                kind = ""
        else:
            kind, want_method = "", "GET"
        anthropic = kind == _MESSAGES

        if kind.startswith("ctl_"):
            await self._control(kind, method, want_method, receive, send)
            return

        # ---- bookkeeping for /_mock/stats (cheap: counters and raw references)
        self.requests += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        headers_raw: list[tuple[bytes, bytes]] = scope["headers"]
        self._last_headers = headers_raw
        body_raw = await _read_body(receive) if method != "GET" else b""
        self._last_body = body_raw

        if not kind:
            await self._error(send, anthropic, 404, f"Unknown path: {method} {path}")
            return
        if method != want_method:
            await self._error(send, anthropic, 405, f"Method {method} not allowed on {path}")
            return

        headers = dict(headers_raw)
        if kind == _MODELS:
            if not self._key_ok(headers.get(b"authorization"), bearer=True):
                await self._error(send, False, 401, "Incorrect API key provided.")
                return
            await self._send_json(send, 200, self._models_body)
            return

        # Parse first so the model is counted even when the request is then refused.
        body: Any
        try:
            body = orjson.loads(body_raw)
        except orjson.JSONDecodeError:
            body = None
        model: Any = deployment
        if model is None and isinstance(body, dict):
            model = body.get("model")
        if isinstance(model, str):
            self.by_model[model] = self.by_model.get(model, 0) + 1

        # ---- authentication, per wire format
        if anthropic:
            # The classic header is x-api-key; recent anthropic SDKs (2.x) send the API key
            # as "Authorization: Bearer" instead, so either one is accepted.
            key = headers.get(b"x-api-key")
            if key is not None:
                ok = self._key_ok(key)
            else:
                auth = headers.get(b"authorization")
                ok = auth is not None and self._key_ok(auth, bearer=True)
            if not ok:
                await self._error(send, True, 401, "invalid x-api-key")
                return
            if b"anthropic-version" not in headers:
                await self._error(send, True, 400, "anthropic-version: header is required")
                return
        elif deployment is not None:
            key = headers.get(b"api-key")
            if key is None or not self._key_ok(key):
                await self._error(
                    send, False, 401, "Access denied due to invalid subscription key or wrong API endpoint."
                )
                return
            if b"api-version=" not in scope.get("query_string", b""):
                await self._error(
                    send, False, 400, "Missing required query parameter: api-version", "api-version"
                )
                return
        elif not self._key_ok(headers.get(b"authorization"), bearer=True):
            await self._error(send, False, 401, "Incorrect API key provided.")
            return

        # ---- request validation
        if body is None:
            await self._error(send, anthropic, 400, "We could not parse the JSON body of your request.")
            return
        if not isinstance(body, dict):
            await self._error(send, anthropic, 400, "The request body must be a JSON object.")
            return
        if not isinstance(model, str) or not model:
            await self._error(send, anthropic, 400, "you must provide a model parameter", "model")
            return
        if anthropic and not isinstance(body.get("max_tokens"), int):
            await self._error(send, True, 400, "max_tokens: Field required", "max_tokens")
            return

        stream = body.get("stream") is True and kind != _EMBED
        failure = self._pick_failure(model)
        first_delay = 0.0
        if failure is not None:
            if failure.fail == "slow_first_token":
                first_delay = failure.delay_ms / 1000.0
            elif await self._fail(failure, stream, anthropic, receive, send):
                return

        if self.settings.latency_ms > 0:
            await self._sleep(self.settings.latency_ms / 1000.0)

        cut = failure is not None and failure.fail == "cut"
        try:
            if kind == _CHAT:
                if stream:
                    chunks = answers.chat_chunks(body, model=model)
                    frames = [(b"data: " + orjson.dumps(c) + b"\n\n", _openai_weight(c)) for c in chunks]
                    frames.append((_DONE, 0))
                else:
                    answer = answers.chat_completion(body, model=model)
                    tokens = answer["usage"]["completion_tokens"]
            elif kind == _EMBED:
                answer = answers.embeddings(body, model=model)
                tokens = 0
            elif stream:
                frames = [
                    (
                        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n",
                        _anthropic_weight(data),
                    )
                    for name, data in answers.anthropic_events(body, model=model)
                ]
            else:
                answer = answers.anthropic_message(body, model=model)
                tokens = answer["usage"]["output_tokens"]
        except answers.MockRequestError as exc:
            await self._error(send, anthropic, 400, exc.message, exc.param)
            return

        if stream:
            await self._stream(send, receive, frames, first_delay, cut)
            return
        delay = first_delay
        tps = self.settings.tokens_per_second
        if tps > 0 and tokens:
            delay += tokens / tps
        if delay > 0:
            await self._sleep(delay)
        await self._send_json(send, 200, orjson.dumps(answer))

    # ------------------------------------------------------------------ responses

    def _key_ok(self, value: bytes | None, *, bearer: bool = False) -> bool:
        expected = self.settings.require_key
        if expected is None:
            return True
        if value is None:
            return False
        text = value.decode("latin-1")
        if bearer:
            scheme, _, text = text.partition(" ")
            if scheme.lower() != "bearer":
                return False
        return text.strip() == expected

    async def _fail(
        self, failure: _Behaviour, stream: bool, anthropic: bool, receive: Receive, send: Send
    ) -> bool:
        """Act out a failure. Returns False when the request should still be answered
        (only "cut" on a stream, which fails mid-way in :meth:`_stream`)."""
        mode = failure.fail
        if mode == "cut" and stream:
            return False
        if mode in ("reset", "cut"):
            # See the module docstring: commit a head, then drop the unfinished body.
            await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
            await send(_EMPTY_MORE)
            return True
        if mode == "timeout":
            task = asyncio.current_task()
            if task is not None:
                self._sleepers.add(task)
            try:
                # Hold the request until the client gives up (or an hour passes).
                await asyncio.wait_for(_wait_disconnect(receive), TIMEOUT_SECONDS)
                return True
            except TimeoutError:
                await self._error(send, anthropic, 504, "mock upstream timeout")
                return True
            finally:
                if task is not None:
                    self._sleepers.discard(task)
        status = int(mode)
        extra = _retry_after_headers(failure.retry_after) if status == 429 else None
        await self._error(send, anthropic, status, f"Injected mock failure ({status})", extra_headers=extra)
        return True

    async def _stream(
        self, send: Send, receive: Receive, frames: list[tuple[bytes, int]], first_delay: float, cut: bool
    ) -> None:
        tps = self.settings.tokens_per_second
        await send(_SSE_START)
        if first_delay <= 0 and tps <= 0 and not cut:
            # Nothing to pace: one write for the whole event stream (still chunked).
            await send(
                {"type": "http.response.body", "body": b"".join(f for f, _ in frames), "more_body": True}
            )
            await send(_END)
            return
        # A paced stream stops when its client leaves, as a real model server does (the server's
        # send does not fail on a closed connection; only receive() tells).
        paced = asyncio.ensure_future(self._paced(send, frames, first_delay, cut, tps))
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        await asyncio.wait({paced, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (paced, gone):
            task.cancel()
        if paced.done() and not paced.cancelled():
            paced.result()

    async def _paced(
        self, send: Send, frames: list[tuple[bytes, int]], first_delay: float, cut: bool, tps: float
    ) -> None:
        if first_delay > 0:
            # Flush the head now, so the delay is "before the first token", not "before headers".
            await send(_EMPTY_MORE)
            await self._sleep(first_delay)
        # "cut" always stops before the terminating frame ([DONE] / message_stop).
        cut_at = min(CUT_AFTER_FRAMES, len(frames) - 1) if cut else len(frames)
        start = time.monotonic()
        produced = 0
        for i, (frame, weight) in enumerate(frames):
            if i >= cut_at:
                # Let the frames reach the client before the drop: clients that read ahead
                # (reqwest buffers the first body bytes) would otherwise see the error
                # before any chunk, i.e. a reset rather than a cut.
                await self._sleep(CUT_PAUSE_SECONDS)
                return  # returning without the final body message aborts the connection
            if tps > 0 and weight:
                produced += weight
                # Pace against a schedule, not per-frame sleeps, so timer slop does not add up.
                ahead = start + produced / tps - time.monotonic()
                if ahead > 0:
                    await self._sleep(ahead)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send(_END)

    @staticmethod
    async def _send_json(
        send: Send, status: int, payload: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = _JSON_HEADERS + extra_headers if extra_headers else _JSON_HEADERS
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _error(
        self,
        send: Send,
        anthropic: bool,
        status: int,
        message: str,
        param: str | None = None,
        *,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if anthropic:
            err_type = _ANTHROPIC_ERRORS.get(
                status, "api_error" if status >= 500 else "invalid_request_error"
            )
            payload: dict[str, Any] = {"type": "error", "error": {"type": err_type, "message": message}}
        else:
            default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
            err_type, code = _OPENAI_ERRORS.get(status, default)
            payload = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
        await self._send_json(send, status, orjson.dumps(payload), extra_headers)

    async def _control(self, kind: str, method: str, want_method: str, receive: Receive, send: Send) -> None:
        body_raw = await _read_body(receive) if method != "GET" else b""
        if method != want_method:
            await self._error(send, False, 405, f"Method {method} not allowed")
            return
        if kind == _CTL_STATS:
            await self._send_json(send, 200, orjson.dumps(self.stats()))
        elif kind == _CTL_HEALTH:
            await self._send_json(send, 200, b'{"status":"ok"}')
        elif kind == _CTL_RESET:
            self.reset()
            await self._send_json(send, 200, b'{"ok":true}')
        else:
            try:
                result = self.set_behaviour(orjson.loads(body_raw))
            except orjson.JSONDecodeError:
                await self._error(send, False, 400, "We could not parse the JSON body of your request.")
                return
            except ValueError as exc:
                await self._error(send, False, 400, str(exc))
                return
            await self._send_json(send, 200, orjson.dumps(result))


def _openai_weight(chunk: dict[str, Any]) -> int:
    """Tokens carried by a chat chunk, for pacing: 1 for a content or argument piece."""
    choices = chunk.get("choices")
    if not choices:
        return 0
    delta = choices[0]["delta"]
    if delta.get("content"):
        return 1
    calls = delta.get("tool_calls")
    return 1 if calls and calls[0].get("function", {}).get("arguments") else 0


def _anthropic_weight(event: dict[str, Any]) -> int:
    return 1 if event["type"] == "content_block_delta" else 0


# --------------------------------------------------------------------------- command line


def _fail_mode(value: str) -> str:
    if not is_fail_mode(value):
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(FAIL_MODES)} or a 4xx/5xx status code")
    return value


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mock upstream flags (including --host and --port) to ``parser``."""
    defaults = MockSettings()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9100, help="port to bind (default: %(default)s)")
    parser.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=defaults.latency_ms,
        help="delay before the first byte of every answer (default: %(default)s)",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=_non_negative,
        default=defaults.tokens_per_second,
        help="pace streamed tokens and delay full answers accordingly; 0 = unlimited (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-rate",
        type=_fraction,
        default=defaults.fail_rate,
        help="probability (0..1) that a request fails with --fail-mode (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-mode",
        type=_fail_mode,
        default=defaults.fail_mode,
        help=f"failure injected by --fail-rate: {', '.join(FAIL_MODES)} or a 4xx/5xx code "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--retry-after",
        type=_non_negative,
        default=defaults.retry_after,
        help="seconds sent in Retry-After with 429 failures (default: %(default)s)",
    )
    parser.add_argument(
        "--delay-ms",
        type=_non_negative,
        default=defaults.delay_ms,
        help="first-token delay of the slow_first_token failure mode (default: %(default)s)",
    )
    parser.add_argument(
        "--require-key",
        default=defaults.require_key,
        help="exact API key expected (Authorization: Bearer, api-key or x-api-key); default: any",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the random failure draw")
    parser.add_argument(
        "--models",
        default=",".join(defaults.models),
        help="comma-separated model ids listed by GET /v1/models (default: %(default)s)",
    )


def settings_from_args(args: argparse.Namespace) -> MockSettings:
    """Build :class:`MockSettings` from arguments parsed with :func:`add_arguments`."""
    models = tuple(m.strip() for m in str(args.models).split(",") if m.strip())
    return MockSettings(
        latency_ms=args.latency_ms,
        tokens_per_second=args.tokens_per_second,
        fail_rate=args.fail_rate,
        fail_mode=args.fail_mode,
        retry_after=args.retry_after,
        delay_ms=args.delay_ms,
        require_key=args.require_key or None,
        seed=args.seed,
        models=models,
    )


def create_app(settings: MockSettings | None = None) -> MockApp:
    """The ASGI app, for embedding in another server or an in-process test."""
    return MockApp(settings)


def run(host: str, port: int, settings: MockSettings) -> None:
    """Serve the mock upstream (uvicorn, in this process) under uvloop until SIGINT/SIGTERM."""
    from ostiary.server.run import serve_app

    app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host  # IPv6 literals need brackets in URLs
    # On stop, do not wait an hour for a "timeout" request or a long latency sleep.
    coro = serve_app(app, host, port, ready_line=f"mock upstream listening on http://{shown}:{port}",
                     on_stop=app.cancel_sleepers)
    if sys.platform != "win32":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
