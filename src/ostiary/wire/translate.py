"""Translation between the OpenAI Chat Completions and the Anthropic Messages wire formats.

Inside the gateway a call is in the OpenAI format (the canonical one). An Anthropic-format request
is translated to it at the edge and its answer translated back; an Anthropic upstream gets the
reverse. Streams are translated event by event by small state machines, so nothing is buffered.
Anthropic fields with no OpenAI equivalent (`top_k`, `thinking`, ...) ride along under `EXTRA` and
reach an Anthropic upstream unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ostiary.errors import InvalidRequest

EXTRA = "_anthropic"  # private key carrying Anthropic-only request fields through the canonical form
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers often omit it

_A_MAPPED = {"model", "max_tokens", "messages", "system", "stream", "stop_sequences", "temperature",
             "top_p", "tools", "tool_choice", "metadata"}

STOP_TO_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop"}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}


# ---------------------------------------------------------------- requests


def anthropic_request_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": body["model"], "max_tokens": body["max_tokens"]}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for m in body["messages"]:
        messages.extend(_a_message_to_openai(m))
    out["messages"] = messages
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            out[k] = body[k]
    if body.get("tools"):
        out["tools"] = [_a_tool_to_openai(t) for t in body["tools"]]
    choice = body.get("tool_choice")
    if choice:
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(kind, "auto")
        if choice.get("disable_parallel_tool_use") and body.get("tools"):
            out["parallel_tool_calls"] = False
    meta = body.get("metadata") or {}
    if isinstance(meta, dict) and meta.get("user_id"):
        out["user"] = str(meta["user_id"])
    extra = {k: v for k, v in body.items() if k not in _A_MAPPED}
    if extra:
        out[EXTRA] = extra
    return out


def _a_tool_to_openai(t: dict[str, Any]) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t["name"], "parameters": t.get("input_schema") or {"type": "object"}}
    if t.get("description"):
        fn["description"] = t["description"]
    return {"type": "function", "function": fn}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def _a_message_to_openai(m: dict[str, Any]) -> list[dict[str, Any]]:
    role, content = m["role"], m["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        calls = [
            {"id": b["id"], "type": "function",
             "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input", {})).decode()}}
            for b in content if b.get("type") == "tool_use"
        ]
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            msg["tool_calls"] = calls
        return [msg]
    # A user turn: tool results become OpenAI `tool` messages, which must come first.
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for b in content:
        kind = b.get("type")
        if kind == "tool_result":
            text = _text_of(b.get("content") or "")
            if b.get("is_error"):
                text = f"[tool error] {text}"
            out.append({"role": "tool", "tool_call_id": b.get("tool_use_id", ""), "content": text})
        elif kind == "text":
            parts.append({"type": "text", "text": b.get("text", "")})
        elif kind == "image":
            src = b.get("source") or {}
            if src.get("type") == "base64":
                url = f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
            else:
                url = src.get("url", "")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "document":
            raise InvalidRequest("document blocks cannot be translated for an OpenAI-compatible upstream",
                                 param="messages")
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def openai_request_to_anthropic(body: dict[str, Any], model: str) -> dict[str, Any]:
    if (body.get("n") or 1) > 1:
        raise InvalidRequest("n > 1 is not supported by this route's Anthropic deployment", param="n")
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        # Anthropic wants alternating turns: merge consecutive turns of the same role.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for m in body["messages"]:
        role, content = m["role"], m.get("content")
        if role in ("system", "developer"):
            system.append(_o_text(content))
        elif role == "user":
            push("user", _o_parts_to_blocks(content))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": t} for t in [_o_text(content)] if t]
            blocks += [_tool_use(c) for c in m.get("tool_calls") or []]
            push("assistant", blocks or [{"type": "text", "text": ""}])
        elif role in ("tool", "function"):
            push("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id") or m.get("name", ""),
                           "content": _o_text(content)}])
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    rf = body.get("response_format") or {}
    if rf.get("type") in ("json_object", "json_schema"):
        schema = (rf.get("json_schema") or {}).get("schema")
        rule = "Answer with a single JSON object and nothing else."
        if schema:
            rule += " It must validate against this JSON schema: " + orjson.dumps(schema).decode()
        system.append(rule)
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("stream"):
        out["stream"] = True
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)  # Anthropic's range is 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("tools"):
        out["tools"] = [
            {"name": t["function"]["name"], "description": t["function"].get("description") or "",
             "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
            for t in body["tools"]
        ]
        choice = body.get("tool_choice")
        tc: dict[str, Any]
        if isinstance(choice, dict):
            tc = {"type": "tool", "name": choice.get("function", {}).get("name", "")}
        else:
            tc = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
        if body.get("parallel_tool_calls") is False and tc["type"] != "none":
            tc["disable_parallel_tool_use"] = True
        out["tool_choice"] = tc
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    out.update(body.get(EXTRA) or {})
    return out


def _o_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call as an Anthropic tool_use block; arguments that are not a JSON object
    (models do emit broken JSON) become an empty or wrapped input rather than an error."""
    fn = call.get("function") or {}
    try:
        args = orjson.loads(fn.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = {}
    return {"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""),
            "input": args if isinstance(args, dict) else {"value": args}}


def _o_parts_to_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return [{"type": "text", "text": ""}]
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for p in content:
        if p.get("type") == "text":
            blocks.append({"type": "text", "text": p.get("text", "")})
        elif p.get("type") == "image_url":
            url = (p.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise InvalidRequest(f"content part {p.get('type')!r} cannot be sent to an Anthropic upstream",
                                 param="messages")
    return blocks


# ---------------------------------------------------------------- responses


def anthropic_response_to_openai(msg: dict[str, Any]) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in msg.get("content", []) if b.get("type") == "text")
    calls = [
        {"id": b["id"], "type": "function",
         "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input", {})).decode()}}
        for b in msg.get("content", []) if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": msg.get("id", "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model", ""),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": STOP_TO_FINISH.get(msg.get("stop_reason") or "end_turn", "stop")}],
        "usage": anthropic_usage_to_openai(msg.get("usage") or {}),
    }


def anthropic_usage_to_openai(u: dict[str, Any]) -> dict[str, Any]:
    cached = u.get("cache_read_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + cached + (u.get("cache_creation_input_tokens") or 0)
    out = u.get("output_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
            "prompt_tokens_details": {"cached_tokens": cached}}


def openai_response_to_anthropic(resp: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (resp.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": _o_text(message["content"])})
    content += [_tool_use(c) for c in message.get("tool_calls") or []]
    usage = resp.get("usage") or {}
    return {
        "id": _msg_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model") or model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0)},
    }


def _msg_id(raw: Any) -> str:
    raw = str(raw or "gateway")
    return raw if raw.startswith("msg_") else f"msg_{raw}"


# ---------------------------------------------------------------- streams


class AnthropicToOpenAIStream:
    """Feeds Anthropic stream events, returns OpenAI chunks (zero or more per event)."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.id = "chatcmpl"
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index = -1
        self.block_is_tool: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type", event)
        if kind == "message_start":
            m = data.get("message") or {}
            self.id, self.model = m.get("id", self.id), m.get("model", self.model)
            self.usage.update(m.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tool_index += 1
                self.block_is_tool[data.get("index", 0)] = self.tool_index
                return [self._chunk({"tool_calls": [{"index": self.tool_index, "id": block.get("id"),
                                                     "type": "function",
                                                     "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            d = data.get("delta") or {}
            if d.get("type") == "text_delta":
                return [self._chunk({"content": d.get("text", "")})]
            if d.get("type") == "input_json_delta":
                idx = self.block_is_tool.get(data.get("index", 0), max(self.tool_index, 0))
                return [self._chunk({"tool_calls": [{"index": idx,
                                                     "function": {"arguments": d.get("partial_json", "")}}]})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                return [self._chunk({}, STOP_TO_FINISH.get(reason, "stop"))]
            return []
        if kind == "message_stop" and self.include_usage:
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                     "model": self.model, "choices": [], "usage": anthropic_usage_to_openai(self.usage)}]
        return []


class OpenAIToAnthropicStream:
    """Feeds OpenAI chunks, returns Anthropic `(event, data)` pairs; call `finish()` at the end."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}
        self.stop_reason = "end_turn"
        self.usage = {"input_tokens": 0, "output_tokens": 0}

    def _start(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self.started = True
        msg: dict[str, Any] = {"id": _msg_id(chunk.get("id")), "type": "message", "role": "assistant",
               "model": chunk.get("model") or self.model, "content": [], "stop_reason": None,
               "stop_sequence": None, "usage": dict(self.usage)}
        return [("message_start", {"type": "message_start", "message": msg}), ("ping", {"type": "ping"})]

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self.block_kind is None:
            return []
        self.block_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _open(self, kind: str, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = self._close()
        self.block += 1
        self.block_kind = kind
        out.append(("content_block_start", {"type": "content_block_start", "index": self.block,
                                            "content_block": block}))
        return out

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            u = chunk["usage"]
            self.usage = {"input_tokens": u.get("prompt_tokens", 0), "output_tokens": u.get("completion_tokens", 0)}
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block_kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out.append(("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                                    "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                i = call.get("index", 0)
                fn = call.get("function") or {}
                if i not in self.tool_blocks:
                    out += self._open("tool", {"type": "tool_use", "id": call.get("id") or f"toolu_{i}",
                                               "name": fn.get("name", ""), "input": {}})
                    self.tool_blocks[i] = self.block
                if fn.get("arguments"):
                    out.append(("content_block_delta", {"type": "content_block_delta", "index": self.tool_blocks[i],
                                                        "delta": {"type": "input_json_delta",
                                                                  "partial_json": fn["arguments"]}}))
            if choice.get("finish_reason"):
                self.stop_reason = FINISH_TO_STOP.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        out = [] if self.started else self._start({})
        out += self._close()
        out.append(("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                      "usage": {"output_tokens": self.usage["output_tokens"],
                                                "input_tokens": self.usage["input_tokens"]}}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out
