"""Anthropic Messages wire format: typed validation of inbound `/v1/messages` requests."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ostiary.wire.openai import _check


class _Base(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    pass


class Block(_Base):
    type: str


class AMessage(_Base):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ATool(_Base):
    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None


class AToolChoice(_Base):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Base):
    model: str
    max_tokens: int
    messages: list[AMessage]
    system: str | list[Block] | None = None
    stream: bool | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[ATool] | None = None
    tool_choice: AToolChoice | None = None
    metadata: dict[str, Any] | None = None


def check_messages(body: dict[str, Any], *, max_messages: int) -> MessagesRequest:
    from ostiary.errors import InvalidRequest

    req: MessagesRequest = _check(body, MessagesRequest)
    if not req.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    if len(req.messages) > max_messages:
        raise InvalidRequest(f"too many messages: {len(req.messages)} (at most {max_messages})", param="messages")
    if req.max_tokens < 1:
        raise InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
    if req.tool_choice is not None and req.tool_choice.type == "tool" and not req.tool_choice.name:
        raise InvalidRequest("tool_choice.name: required when tool_choice.type is 'tool'", param="tool_choice.name")
    return req
