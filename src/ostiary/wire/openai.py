"""OpenAI wire format: typed validation of inbound requests.

The gateway forwards the request body as the client sent it (unknown fields pass through to
OpenAI-compatible upstreams), so these types exist to *check* a body, not to rebuild it: msgspec
validates the known fields with precise locations (`$.messages[0].role`) in microseconds.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ostiary.errors import InvalidRequest


class _Base(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    pass


class ContentPart(_Base, tag_field="type", tag=True):
    pass


class TextPart(ContentPart, tag="text"):
    text: str


class ImageUrl(_Base):
    url: str
    detail: str | None = None


class ImagePart(ContentPart, tag="image_url"):
    image_url: ImageUrl


class InputAudioPart(ContentPart, tag="input_audio"):
    input_audio: dict[str, Any]


class FilePart(ContentPart, tag="file"):
    file: dict[str, Any]


class RefusalPart(ContentPart, tag="refusal"):
    refusal: str


Part = TextPart | ImagePart | InputAudioPart | FilePart | RefusalPart


class FunctionCall(_Base):
    name: str
    arguments: str


class ToolCall(_Base):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class Message(_Base):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Base):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Base):
    function: FunctionDef
    type: Literal["function"] = "function"


class StreamOptions(_Base):
    include_usage: bool | None = None


class ResponseFormat(_Base):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatRequest(_Base):
    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class EmbeddingsRequest(_Base):
    model: str
    input: str | list[Any]  # msgspec allows one list type in a union; the items are checked below
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


def _check(body: dict[str, Any], kind: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as e:
        text = str(e)
        param = text.rsplit(" - at `$.", 1)[-1].rstrip("`") if " - at `$." in text else None
        raise InvalidRequest(f"invalid request: {text}", code="invalid_value", param=param) from None


def check_chat(body: dict[str, Any], *, max_messages: int) -> ChatRequest:
    req: ChatRequest = _check(body, ChatRequest)
    if not req.messages:
        raise InvalidRequest("messages must contain at least one message", param="messages")
    if len(req.messages) > max_messages:
        raise InvalidRequest(
            f"too many messages: {len(req.messages)} (this gateway accepts at most {max_messages})",
            param="messages", code="too_many_messages")
    if req.n is not None and not 1 <= req.n <= 128:
        raise InvalidRequest("n must be between 1 and 128", param="n")
    for name in ("max_tokens", "max_completion_tokens"):
        v = getattr(req, name)
        if v is not None and v < 1:
            raise InvalidRequest(f"{name} must be at least 1", param=name)
    if req.temperature is not None and not 0 <= req.temperature <= 2:
        raise InvalidRequest("temperature must be between 0 and 2", param="temperature")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true", param="stream_options")
    return req


def check_embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    req: EmbeddingsRequest = _check(body, EmbeddingsRequest)
    if isinstance(req.input, list):
        if not req.input:
            raise InvalidRequest("input must not be empty", param="input")
        if not (all(isinstance(x, str) for x in req.input) or all(type(x) is int for x in req.input)
                or all(isinstance(x, list) and all(type(t) is int for t in x) for x in req.input)):
            raise InvalidRequest("input must be a string, a list of strings, a list of token ids "
                                 "or a list of lists of token ids", param="input")
    if req.dimensions is not None and req.dimensions < 1:
        raise InvalidRequest("dimensions must be at least 1", param="dimensions")
    return req
