"""Deterministic fake LLM answers in the OpenAI and Anthropic wire formats.

This module is pure: no I/O, no clock other than the optional ``created`` default, no
web framework. It is shared by the standalone mock upstream (``ostiary.mockup.server``)
and by the gateway's built-in ``mock`` provider, so both produce byte-for-byte the same
answers for the same request.

The answer rules, kept simple so tests can predict them:

* Text: ``"Mock answer to: <last user text>"`` where the user text is the text of the
  last ``user`` message (string content, or the text parts of a content list; images,
  audio and files are ignored), truncated to 200 characters. Without user text the
  answer is ``"Mock answer."``.
* Tokens are whitespace-separated words. ``completion_tokens`` / ``output_tokens`` is
  the number of words in the output (for a tool call: words of the name plus words of
  the JSON arguments). ``prompt_tokens`` / ``input_tokens`` is 3 per message (the
  system prompt counts as one message) plus the words of its text content, tool-call
  arguments and tool results.
* ``stop`` / ``stop_sequences`` cut the text before the earliest stop string;
  ``max_tokens`` / ``max_completion_tokens`` then keep at most that many words. Both
  only apply to plain text: JSON (response_format) and tool-call output stay whole so
  they always parse.
* Tool calls: when tools are offered, tool choice is not "none" and the conversation
  does not end with a tool result, the answer is one call to the first tool (or the one
  forced by tool_choice) with arguments built from its JSON schema by
  :func:`value_for_schema`.
* Ids are derived from a hash of the request (minus ``stream``/``stream_options``), so
  the same request gets the same ids, streamed or not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
from typing import Any

import orjson

__all__ = [
    "MockRequestError",
    "anthropic_events",
    "anthropic_message",
    "chat_chunks",
    "chat_completion",
    "embeddings",
    "value_for_schema",
]

MAX_ECHO_CHARS = 200
DEFAULT_EMBEDDING_DIMENSIONS = 16
SYSTEM_FINGERPRINT = "fp_mock"
_TOKENS_PER_MESSAGE = 3

# One piece per word with the whitespace that follows it; the second alternative only
# matches a whitespace-only string, so "".join(pieces) == text always holds.
_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")


class MockRequestError(ValueError):
    """The request cannot be answered (the server maps it to a 400 error)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --------------------------------------------------------------------------- helpers


# Fields that change how an answer is delivered, not what it is: left out of the id hash
# so a streamed answer carries the same ids as the non-streamed one.
_TRANSPORT_KEYS = frozenset({"stream", "stream_options"})


def _request_digest(body: dict[str, Any]) -> str:
    return _digest({k: v for k, v in body.items() if k not in _TRANSPORT_KEYS})


def _digest(obj: Any, size: int = 12) -> str:
    """Stable short hex hash of a JSON-like object (key order does not matter)."""
    try:
        raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        # e.g. integers beyond 64 bits: fall back to repr, still deterministic
        raw = repr(obj).encode()
    return hashlib.blake2b(raw, digest_size=size).hexdigest()


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Split text into stream pieces: one word plus its following whitespace each."""
    return _PIECE_RE.findall(text)


def _text_of(content: Any) -> str:
    """Text of an OpenAI or Anthropic message content (string or list of parts/blocks).

    Only text parts count; images, audio, files and documents are ignored.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return " ".join(texts)
    return ""


def _answer_text(user_text: str) -> str:
    user_text = user_text.strip()
    if not user_text:
        return "Mock answer."
    return "Mock answer to: " + user_text[:MAX_ECHO_CHARS]


def _apply_limits(text: str, stops: list[str], max_words: int | None) -> tuple[str, str | None, str]:
    """Cut ``text`` at the first stop string, then at ``max_words`` words.

    Returns (text, matched stop string or None, reason) where reason is "stop" (natural
    end or stop string), "stop_sequence" (a stop string matched) or "length".
    """
    matched: str | None = None
    best = len(text)
    for stop in stops:
        if stop:
            pos = text.find(stop)
            if 0 <= pos < best:
                best, matched = pos, stop
    if matched is not None:
        text = text[:best]
    if max_words is not None:
        pieces = _pieces(text)
        if sum(1 for p in pieces if not p.isspace()) > max_words:
            # The word limit is hit before the stop string would have been reached.
            return "".join(pieces[: max(max_words, 0)]).rstrip(), None, "length"
    return text, matched, ("stop_sequence" if matched is not None else "stop")


def _as_stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def _as_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MockRequestError(f"'{param}' must be an integer", param)
    return value


def value_for_schema(schema: Any, _depth: int = 0) -> Any:
    """A deterministic value that fits a (simple) JSON schema.

    Objects are built from ``properties``: strings -> "mock" (or the first ``enum``
    value), numbers/integers -> 1, booleans -> true, nested objects recurse, arrays ->
    [], anything else -> null. A ``type`` list uses its first non-null type.
    """
    if not isinstance(schema, dict) or _depth > 16:
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "string":
        return "mock"
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {name: value_for_schema(sub, _depth + 1) for name, sub in props.items()}
    return None


def _arguments_json(schema: Any) -> str:
    """Tool arguments as JSON text. Stdlib json with its default ", " / ": " separators
    so the text has spaces: streamed arguments then come in several word fragments."""
    value = value_for_schema(schema)
    if not isinstance(value, dict):
        value = {}
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- OpenAI chat


def _openai_prompt_tokens(messages: list[Any]) -> int:
    total = 0
    for msg in messages:
        total += _TOKENS_PER_MESSAGE
        if not isinstance(msg, dict):
            continue
        total += _words(_text_of(msg.get("content")))
        for call in msg.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                fn = call["function"]
                total += _words(str(fn.get("name") or "")) + _words(str(fn.get("arguments") or ""))
    return total


def _openai_pick_tool(body: dict[str, Any], messages: list[Any]) -> dict[str, Any] | None:
    """The function tool the mock should call, or None for a text answer."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") in ("tool", "function"):
        # The model has just been given a tool result: answer in text.
        return None
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
    ]
    if not functions:
        return None
    if isinstance(choice, dict):
        wanted = (
            (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        )
        if wanted:
            for fn in functions:
                if fn.get("name") == wanted:
                    return fn
    return functions[0]


def last_user_text(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


class _ChatPlan:
    """Everything both the non-streaming and the streaming chat answer need."""

    __slots__ = (
        "completion_tokens",
        "content",
        "created",
        "finish_reason",
        "id",
        "n",
        "prompt_tokens",
        "tool",
    )

    def __init__(self, body: dict[str, Any], created: int | None, reply: str | None = None) -> None:
        if not isinstance(body, dict):
            raise MockRequestError("request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MockRequestError("'messages' must be a list", "messages")
        n = _as_int(body.get("n"), "n")
        self.n = 1 if n is None else n
        if not 1 <= self.n <= 128:
            raise MockRequestError("'n' must be between 1 and 128", "n")
        max_words = _as_int(body.get("max_completion_tokens"), "max_completion_tokens")
        if max_words is None:
            max_words = _as_int(body.get("max_tokens"), "max_tokens")

        digest = _request_digest(body)
        self.id = "chatcmpl-mock-" + digest
        self.created = int(time.time()) if created is None else created
        self.prompt_tokens = _openai_prompt_tokens(messages)
        # tool: (call id, name, arguments JSON) or None
        self.tool: tuple[str, str, str] | None = None
        self.content = ""
        fn = _openai_pick_tool(body, messages)
        if fn is not None:
            name = str(fn.get("name") or "tool")
            self.tool = ("call_mock_" + digest[:16], name, _arguments_json(fn.get("parameters")))
            self.finish_reason = "tool_calls"
            per_choice = _words(name) + _words(self.tool[2])
        else:
            text = reply if reply is not None else _answer_text(last_user_text(messages))
            fmt = body.get("response_format")
            fmt = fmt if isinstance(fmt, dict) else {}
            fmt_type = fmt.get("type")
            if fmt_type == "json_schema":
                spec = fmt.get("json_schema")
                value = value_for_schema(spec.get("schema") if isinstance(spec, dict) else None)
                self.content = json.dumps(value if value is not None else {}, ensure_ascii=False)
                self.finish_reason = "stop"
            elif fmt_type == "json_object":
                self.content = json.dumps({"answer": text}, ensure_ascii=False)
                self.finish_reason = "stop"
            else:
                self.content, _, reason = _apply_limits(text, _as_stop_list(body.get("stop")), max_words)
                self.finish_reason = "length" if reason == "length" else "stop"
            per_choice = _words(self.content)
        # OpenAI bills the tokens of every choice.
        self.completion_tokens = per_choice * self.n

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def chat_completion(body: dict[str, Any], *, model: str, created: int | None = None,
                    reply: str | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object answering the chat request ``body`` (with ``reply`` as
    its text instead of the echo, when given).

    Raises :class:`MockRequestError` for a request that cannot be answered.
    """
    plan = _ChatPlan(body, created, reply)
    choices = []
    for index in range(plan.n):
        message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
        if plan.tool is not None:
            call_id, name, arguments = plan.tool
            message["content"] = None
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ]
        else:
            message["content"] = plan.content
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
        )
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
        "choices": choices,
        "usage": plan.usage(),
    }


def chat_chunks(body: dict[str, Any], *, model: str, created: int | None = None,
                reply: str | None = None) -> list[dict[str, Any]]:
    """The same answer as :func:`chat_completion`, as OpenAI ``chat.completion.chunk`` dicts.

    Per choice: a role chunk, then one chunk per word (text) or a tool-call header chunk
    (index, id, type, name, empty arguments) followed by argument fragments, then a chunk
    with ``finish_reason``. With ``n > 1`` the choices are interleaved round-robin, as
    OpenAI does. With ``stream_options.include_usage`` every chunk carries
    ``"usage": null`` and a last chunk has empty ``choices`` and the usage.
    """
    plan = _ChatPlan(body, created, reply)
    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

    deltas: list[dict[str, Any]] = []
    if plan.tool is not None:
        call_id, name, arguments = plan.tool
        deltas.append({"role": "assistant", "content": None, "refusal": None})
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )
        for frag in _pieces(arguments):
            deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]})
    else:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(plan.content):
            deltas.append({"content": piece})

    head = {
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
    }

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        out = dict(head)
        out["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:
            out["usage"] = None
        return out

    chunks = []
    for delta in deltas:
        for index in range(plan.n):
            chunks.append(chunk(index, delta, None))
    for index in range(plan.n):
        chunks.append(chunk(index, {}, plan.finish_reason))
    if include_usage:
        last = dict(head)
        last["choices"] = []
        last["usage"] = plan.usage()
        chunks.append(last)
    return chunks


# --------------------------------------------------------------------------- embeddings


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]  # one input given as token ids
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return list(value)
    raise MockRequestError(
        "'input' must be a string, a list of strings, a list of token ids or a list of token id lists",
        "input",
    )


def _unit_vector(item: str | list[int], dims: int) -> list[float]:
    """A deterministic unit vector for one input, rounded to float32 like OpenAI's."""
    data = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = hashlib.shake_256(data).digest(4 * dims)
    ints = struct.unpack(f"<{dims}I", raw)
    vec = [i / 2147483647.5 - 1.0 for i in ints]  # uniform in [-1, 1]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    # Round-trip through float32 so the float and base64 forms decode identically.
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in vec))))


def embeddings(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI embeddings response for ``body``.

    ``input`` may be a string, a list of strings, a list of token ids or a list of token id
    lists. Each vector is a unit vector derived from a hash of its input, of dimension
    ``dimensions`` (default 16). ``encoding_format: "base64"`` returns the base64 of the
    little-endian float32 array, as OpenAI does. Usage counts words (or token ids).
    """
    if not isinstance(body, dict):
        raise MockRequestError("request body must be a JSON object")
    items = _embedding_inputs(body.get("input"))
    dims = _as_int(body.get("dimensions"), "dimensions")
    dims = DEFAULT_EMBEDDING_DIMENSIONS if dims is None else dims
    if not 1 <= dims <= 8192:
        raise MockRequestError("'dimensions' must be between 1 and 8192", "dimensions")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise MockRequestError("'encoding_format' must be 'float' or 'base64'", "encoding_format")

    data = []
    tokens = 0
    for index, item in enumerate(items):
        vec = _unit_vector(item, dims)
        tokens += _words(item) if isinstance(item, str) else len(item)
        embedding: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode("ascii") if fmt == "base64" else vec
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --------------------------------------------------------------------------- Anthropic


def _anthropic_block_words(block: Any) -> int:
    if isinstance(block, str):
        return _words(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return _words(str(block.get("text") or ""))
    if kind == "tool_use":
        return _words(str(block.get("name") or "")) + _words(json.dumps(block.get("input") or {}))
    if kind == "tool_result":
        return _words(_text_of(block.get("content")))
    return 0


def _anthropic_input_tokens(body: dict[str, Any], messages: list[Any]) -> int:
    total = 0
    system = body.get("system")
    if system:
        total += _TOKENS_PER_MESSAGE + _words(_text_of(system))
    for msg in messages:
        total += _TOKENS_PER_MESSAGE
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, list):
            total += sum(_anthropic_block_words(b) for b in content)
        else:
            total += _anthropic_block_words(content)
    return total


def _anthropic_pick_tool(body: dict[str, Any], messages: list[Any]) -> dict[str, Any] | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    if choice.get("type") == "none":
        return None
    last = messages[-1] if messages else None
    last_blocks = last.get("content") if isinstance(last, dict) and last.get("role") == "user" else None
    if isinstance(last_blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last_blocks
    ):
        return None  # the model has just been given a tool result: answer in text
    # Custom tools have an input_schema; server tools (web_search, ...) have a type instead.
    custom = [t for t in tools if isinstance(t, dict) and t.get("name") and "input_schema" in t]
    if not custom:
        return None
    if choice.get("type") == "tool" and choice.get("name"):
        for tool in custom:
            if tool.get("name") == choice["name"]:
                return tool
    return custom[0]


class _AnthropicPlan:
    __slots__ = ("id", "input_tokens", "output_tokens", "stop_reason", "stop_sequence", "text", "tool")

    def __init__(self, body: dict[str, Any]) -> None:
        if not isinstance(body, dict):
            raise MockRequestError("request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise MockRequestError("messages: Field required", "messages")
        max_tokens = _as_int(body.get("max_tokens"), "max_tokens")
        digest = _request_digest(body)
        self.id = "msg_mock_" + digest
        self.input_tokens = _anthropic_input_tokens(body, messages)
        self.stop_sequence: str | None = None
        self.text = ""
        # tool: (tool_use id, name, input dict, input JSON text) or None
        self.tool: tuple[str, str, dict[str, Any], str] | None = None
        tool = _anthropic_pick_tool(body, messages)
        if tool is not None:
            name = str(tool["name"])
            value = value_for_schema(tool.get("input_schema"))
            value = value if isinstance(value, dict) else {}
            self.tool = ("toolu_mock_" + digest[:16], name, value, json.dumps(value, ensure_ascii=False))
            self.stop_reason = "tool_use"
            self.output_tokens = _words(name) + _words(self.tool[3])
        else:
            user_text = ""
            for msg in reversed(messages):
                if isinstance(msg, dict) and msg.get("role") == "user":
                    user_text = _text_of(msg.get("content"))
                    break
            self.text, self.stop_sequence, reason = _apply_limits(
                _answer_text(user_text), _as_stop_list(body.get("stop_sequences")), max_tokens
            )
            self.stop_reason = {"length": "max_tokens", "stop": "end_turn"}.get(reason, reason)
            self.output_tokens = _words(self.text)

    def usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }

    def envelope(self, model: str) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": model, "content": []}


def anthropic_message(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """An Anthropic Messages API ``message`` object answering ``body``.

    The content is one text block, or one ``tool_use`` block when a tool is called.
    """
    plan = _AnthropicPlan(body)
    msg = plan.envelope(model)
    if plan.tool is not None:
        tool_id, name, value, _ = plan.tool
        msg["content"] = [{"type": "tool_use", "id": tool_id, "name": name, "input": value}]
    else:
        msg["content"] = [{"type": "text", "text": plan.text}]
    msg["stop_reason"] = plan.stop_reason
    msg["stop_sequence"] = plan.stop_sequence
    msg["usage"] = plan.usage(plan.output_tokens)
    return msg


def anthropic_events(body: dict[str, Any], *, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The same answer as :func:`anthropic_message`, as (event name, data) SSE events.

    Sequence: message_start, content_block_start, ping, content_block_delta...,
    content_block_stop, message_delta (stop_reason, usage.output_tokens), message_stop.
    """
    plan = _AnthropicPlan(body)
    start = plan.envelope(model)
    start["stop_reason"] = None
    start["stop_sequence"] = None
    # Like the real API, message_start reports a token already produced; message_delta
    # carries the cumulative final count.
    start["usage"] = plan.usage(min(1, plan.output_tokens))
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    if plan.tool is not None:
        tool_id, name, _, arguments = plan.tool
        block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": frag} for frag in _pieces(arguments)]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(plan.text)]
    events.append(
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
    )
    events.append(("ping", {"type": "ping"}))
    for delta in deltas:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence},
                "usage": {"output_tokens": plan.output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
