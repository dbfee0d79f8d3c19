"""The audit stage: first in the pipeline, so that every request, refused or failed, leaves an event.

A non-streamed answer is recorded (durably, see audit/trail.py) before the server sends it; a stream
is recorded when it ends, before its final `[DONE]`/`message_stop` leaves, with the text collected
as it passed. A request the client abandoned is recorded without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ostiary.audit.event import StreamedAnswer, answer_of, describe
from ostiary.audit.trail import AuditTrail
from ostiary.errors import GatewayError
from ostiary.pipeline.call import Call, close_stream
from ostiary.pipeline.stage import Handler

Batches = AsyncIterator[list[dict[str, Any]]]


class AuditStage:
    name = "audit"

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    async def __call__(self, call: Call, next: Handler) -> None:
        try:
            await next(call)
        except GatewayError as e:
            await self.trail.record(describe(call, e.status, (e.code or e.type, e.message), None, time.perf_counter()))
            raise
        except asyncio.CancelledError:
            self.trail.record_nowait(describe(call, 499, ("client_disconnected", "the client left before the answer"),
                                              None, time.perf_counter()))
            raise
        except Exception as e:
            self.trail.record_nowait(describe(call, 500, ("internal_error", e.__class__.__name__), None,
                                              time.perf_counter()))
            raise
        if call.stream and call.result is not None and not isinstance(call.result, dict):
            call.result = AuditedStream(call.result, self.trail, call)
        else:
            await self.trail.record(describe(call, 200, None, answer_of(call.result), time.perf_counter()))


class AuditedStream:
    """Passes a stream's batches through, collecting the answer; records the call at its end."""

    def __init__(self, batches: Batches, trail: AuditTrail, call: Call) -> None:
        self.batches = batches
        self.trail = trail
        self.call = call
        self.answer = StreamedAnswer()
        self.done = False

    def __aiter__(self) -> AuditedStream:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        try:
            batch = await self.batches.__anext__()
        except StopAsyncIteration:
            await self._record(None)
            raise
        except GatewayError as e:
            # The headers (200) are gone: the stream ends with this error event.
            await self._record((e.code or e.type, e.message))
            raise
        self.answer.feed(batch)
        return batch

    async def _record(self, error: tuple[str, str] | None) -> None:
        self.done = True
        await self.trail.record(describe(self.call, 200, error, self.answer.answer(), time.perf_counter()))

    async def aclose(self) -> None:
        try:
            await close_stream(self.batches)
        finally:
            if not self.done:
                self.done = True
                error = ("stream_interrupted", self.call.error or "the stream ended before its end")
                self.trail.record_nowait(describe(self.call, 200, error, self.answer.answer(), time.perf_counter()))
