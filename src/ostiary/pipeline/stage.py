"""Stages and the pipeline that runs them.

A stage is an async callable `stage(call, next)`: it may act before the rest of the pipeline runs,
after it (the result is on `call.result`; a stream can be wrapped), or stop it by raising a
`GatewayError`. The innermost handler is the router, which produces the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ostiary.pipeline.call import Call

Handler = Callable[[Call], Awaitable[None]]


class Stage(Protocol):
    name: str

    async def __call__(self, call: Call, next: Handler) -> None: ...


def compose(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Fold the stages around the terminal handler once, so a request pays no per-call assembly."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, next: Handler) -> Handler:
    async def run(call: Call) -> None:
        await stage(call, next)

    return run
