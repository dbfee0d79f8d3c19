"""The audit event of one request: what an auditor needs to reconstruct what the gateway knew and did.

`describe(call)` splits a finished call into its *envelope* (tenant, key id, route, deployment and
upstream model, every routing attempt, config and guardrail policy versions, verdicts, tokens, cost,
latency, status, trace id: kept in clear, for as long as the envelope retention says) and its
*personal* part (user, source address, token subject, the prompt as it left for the upstream, i.e.
after redaction, and the answer with the redacted values put back in their placeholders), which the
writer encrypts under the data subject's key (audit/crypto.py) before anything reaches disk.

Events are JSON. The sequencer prefixes the stored form with the event's index in the log
(`{"seq":N,...`), so the Merkle leaf (the stored bytes) says where it belongs and two swapped
events cannot pass for each other.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ostiary.pipeline.call import Call

MAX_TEXT = 256 * 1024  # characters of one prompt or answer kept in an event; longer ones are cut, and say so


@dataclass(slots=True)
class Pending:
    """An event on its way to the spool: the envelope, the subject and the content to encrypt."""

    envelope: dict[str, Any]
    subject: str | None  # "tenant/user" (or the key or token subject); None: nothing personal
    personal: dict[str, Any] | None


# A uid is 64 random bits drawn once per process and a 64-bit counter: unique across replicas and
# restarts without a system call per event.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()


def new_uid() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


def describe(call: Call, status: int, error: tuple[str, str] | None, answer: dict[str, Any] | None,
             now: float) -> Pending:
    """The event of a finished call (`error` = (code, message) when it failed)."""
    p = call.principal
    usage = call.usage if isinstance(call.usage, dict) else None
    verdicts = call.decisions.get("guardrails") or []
    envelope: dict[str, Any] = {
        "kind": "request",
        "uid": new_uid(),
        "at": _iso(call.started_wall),
        "request_id": call.id,
        "tenant": p.tenant if p is not None else None,
        "principal": {"kind": p.kind, "key": p.subject if p.kind == "key" else None, "role": p.role}
        if p is not None else None,
        "api": call.api,
        "model": call.model,
        "stream": call.stream,
        "route": call.route,
        "deployment": call.deployment,
        "upstream_model": call.upstream_model,
        "attempts": [{"route": a.route, "deployment": a.deployment, "ms": round(a.duration * 1000, 2),
                      "status": a.status, "outcome": a.outcome, "error": a.error} for a in call.attempts],
        "config_version": call.config_version,
        "prompt": call.decisions.get("prompt"),
        "release": call.decisions.get("release"),
        "policies": sorted({f"{v['policy']}@{v['version']}" for v in verdicts}),
        "guardrails": verdicts,
        "authorization": call.decisions.get("authorization"),
        "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")} if usage else None,
        "cost_usd": call.decisions.get("cost_usd"),
        "latency_ms": round((now - call.started) * 1000, 2),
        "first_byte_ms": round((call.first_byte - call.started) * 1000, 2) if call.first_byte else None,
        "status": status,
        "error": {"code": error[0], "message": error[1][:1000]} if error else None,
        "trace_id": call.decisions.get("trace_id"),
    }
    # Subjects are per tenant: two tenants' "alice" are two people.
    subject = f"{p.tenant}/{p.user or p.subject}" if p is not None else "-/anonymous"
    personal = {
        "user": p.user if p is not None else None,
        "subject": p.subject if p is not None and p.kind != "key" else None,
        "ip": call.client_ip or None,
        "request": _request(call.body),
        "raw_request": _cut(call.raw_request) if call.raw_request is not None else None,
        "answer": _conceal(call, answer) if answer else None,
    }
    return Pending(envelope, subject, personal)


def administrative(row: dict[str, Any]) -> Pending:
    """The event of one administrative change (a row of admin_events: it holds no personal content)."""
    envelope = {"kind": "admin", "uid": new_uid(), "at": _iso_dt(row["at"]), "admin_event": row["id"],
                "actor": row["actor"], "actor_tenant": row["actor_tenant"], "action": row["action"],
                "tenant": row["tenant_id"], "target": row["target"], "details": row["details"]}
    return Pending(envelope, None, None)


def notice(kind: str, **fields: Any) -> Pending:
    """An event the audit service writes about itself (erasure receipts, verification runs, ...)."""
    return Pending({"kind": kind, "uid": new_uid(), "at": _iso(datetime.now(UTC).timestamp()), **fields}, None, None)


def answer_of(result: Any) -> dict[str, Any] | None:
    """The text and tool calls of a non-streamed answer (vectors of embeddings are not kept)."""
    try:
        message = result["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    out = {"content": message.get("content"), "tool_calls": message.get("tool_calls")}
    return out if out["content"] is not None or out["tool_calls"] else None


class StreamedAnswer:
    """Collects a streamed answer's text and tool calls from its chunks, as they pass."""

    __slots__ = ("parts", "tools")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}

    def feed(self, batch: list[dict[str, Any]]) -> None:
        for chunk in batch:
            choices = chunk.get("choices")
            if not choices:
                continue
            delta = choices[0].get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str):
                self.parts.append(text)
            for tc in delta.get("tool_calls") or ():
                slot = self.tools.setdefault(tc.get("index", 0), {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""

    def answer(self) -> dict[str, Any] | None:
        if not self.parts and not self.tools:
            return None
        return {"content": "".join(self.parts) or None,
                "tool_calls": [self.tools[i] for i in sorted(self.tools)] or None}


def _request(body: dict[str, Any]) -> Any:
    for field in ("messages", "input"):
        if field in body:
            return {field: _cut(body[field])}
    return None


def _conceal(call: Call, answer: dict[str, Any]) -> dict[str, Any]:
    # The guardrails put the caller's redacted values back into the answer; the record keeps the
    # placeholders, as it does for the prompt.
    conceal = call.conceal
    content = answer.get("content")
    if conceal is not None and isinstance(content, str):
        answer = {**answer, "content": conceal(content)}
    return _cut(answer)


def _cut(value: Any) -> Any:
    """`value` with every string longer than MAX_TEXT cut (a copy only when one is)."""
    try:
        if isinstance(value, (list, dict)) and len(orjson.dumps(value)) <= MAX_TEXT:
            return value  # its serialisation is shorter than the limit, so is every string in it
    except orjson.JSONEncodeError:
        pass
    return _cut_all(value)


def _cut_all(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f" [cut: {len(value)} characters]"
    if isinstance(value, list):
        return [_cut_all(v) for v in value]
    if isinstance(value, dict):
        return {k: _cut_all(v) for k, v in value.items()}
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def _iso_dt(at: datetime) -> str:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat(timespec="microseconds")
