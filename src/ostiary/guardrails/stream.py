"""Output guardrails on a stream: nothing that fails a check reaches the client.

The answer's text is held in a buffer per choice. After each upstream batch the buffer is scanned
with the policy's output scanners, and everything except a tail is released through
`Policy.judge_answer` (a block ends the stream with an error event; values are redacted, the
prompt's values restored). The tail is what could still be the beginning of a match completed by
the next chunk: `HOLD` characters, or more for an unfinished key block, link or run of token
characters, or the beginning of a placeholder. Scanning the held tail together with the new text is
what catches a span split across chunks at any position; it is released at the end of its choice
after a last scan. Tool-call arguments are held whole and judged at the end of their choice.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ostiary.guardrails.policy import GuardrailBlocked, Policy, Verdict
from ostiary.guardrails.redact import PARTIAL_PLACEHOLDER, Vault
from ostiary.guardrails.schema import validate
from ostiary.pipeline.call import close_stream

HOLD = 128  # the tail always held: room for a value split at the end of a batch
_OPEN_BLOCK = re.compile(r"-----BEGIN[^\n]{0,60}(?![\s\S]*-----END)")
# Values of any length match only once complete: a markdown link or image not closed yet, or a run
# of token characters (JWT, key, URL, connection string) touching the end. Held from their start,
# up to LONGEST characters (no credential is longer).
_OPEN_LINK = re.compile(r"!?\[[^\]\n]{0,500}\]\([^)\n]*$|<img\b[^>]*$", re.IGNORECASE)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=:@%?&#;!$*,[]()'-")
LONGEST = 16_384

Batch = list[dict[str, Any]]


class GuardedStream:
    def __init__(self, batches: AsyncIterator[Batch], policy: Policy, vault: Vault,
                 verdicts: list[dict[str, Any]], schema: dict[str, Any] | None = None) -> None:
        self.batches, self.policy, self.vault, self.verdicts = batches, policy, vault, verdicts
        # An answer that must match a schema can only be judged whole: it is held to its end.
        self.schema = schema
        self._judged = False
        self._held: dict[int, str] = {}  # choice index -> text not yet released
        self._template: dict[int, dict[str, Any]] = {}  # choice index -> a chunk to dress released text in
        self._tools: dict[int, dict[int, dict[str, Any]]] = {}  # choice -> tool call index -> what arrived

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> Batch:
        while True:
            try:
                batch = await self.batches.__anext__()
            except StopAsyncIteration:
                # Ended without a finish_reason chunk: what is still held goes out after a last scan.
                out = [_dress(self._template[i], i, text) for i in sorted(self._held)
                       if self._held[i] and (text := self._release(i, final=True))]
                for i in sorted(self._tools):
                    out += self._release_tools(i)
                self._held.clear()
                if out:
                    return out
                raise
            out = self._feed(batch)
            if out:
                return out

    async def aclose(self) -> None:
        await close_stream(self.batches)

    def _feed(self, batch: Batch) -> Batch:
        out: Batch = []
        touched: set[int] = set()
        for chunk in batch:
            choices = chunk.get("choices") or []
            rest = []
            for choice in choices:
                delta = choice.get("delta") or {}
                i = choice.get("index", 0)
                text = delta.get("content")
                if delta.get("tool_calls"):
                    # Tool calls are held whole and judged complete, at the end of the choice.
                    self._hold_tools(i, delta["tool_calls"], chunk)
                    delta = {k: v for k, v in delta.items() if k != "tool_calls"}
                    choice = {**choice, "delta": delta}
                    if not (delta or choice.get("finish_reason")):
                        continue
                if isinstance(text, str) and text:
                    self._held[i] = self._held.get(i, "") + text
                    self._template[i] = chunk
                    touched.add(i)
                    other = {k: v for k, v in delta.items() if k != "content"}
                    if other or choice.get("finish_reason"):
                        rest.append({**choice, "delta": other})
                else:
                    rest.append(choice)
            if choices and not rest:
                continue  # all its text is held
            # Only the choices that finish here are final; the others may still be mid-value.
            ending = {c.get("index", 0) for c in rest if c.get("finish_reason")}
            for i in sorted(touched | ending):
                released = self._release(i, final=i in ending)
                if released:
                    out.append(_dress(self._template[i], i, released))
            for i in sorted(ending):
                out += self._release_tools(i)
            touched = set()
            out.append({**chunk, "choices": rest} if choices else chunk)
        for i in sorted(touched):
            released = self._release(i, final=False)
            if released:
                out.append(_dress(self._template[i], i, released))
        return out

    def _hold_tools(self, i: int, deltas: list[Any], chunk: dict[str, Any]) -> None:
        calls = self._tools.setdefault(i, {})
        for d in deltas:
            if not isinstance(d, dict):
                continue
            call = calls.setdefault(d.get("index", 0), {"index": d.get("index", 0), "arguments": ""})
            for k in ("id", "type"):
                if d.get(k):
                    call[k] = d[k]
            fn = d.get("function")
            fn = fn if isinstance(fn, dict) else {}
            if isinstance(fn.get("name"), str):
                call["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str):
                call["arguments"] += fn["arguments"]
        self._template.setdefault(i, chunk)

    def _release_tools(self, i: int) -> Batch:
        """Choice `i`'s held tool calls, each with its complete arguments scanned, in one chunk."""
        calls = self._tools.pop(i, None)
        if not calls:
            return []
        deltas = []
        for call in (calls[k] for k in sorted(calls)):
            args = self.policy.judge_answer(call["arguments"], self.vault, self.verdicts,
                                            f"choices[{i}].tool_calls of the stream")
            fn: dict[str, Any] = {"arguments": args}
            if "name" in call:
                fn["name"] = call["name"]
            deltas.append({k: v for k, v in (("index", call["index"]), ("id", call.get("id")),
                                             ("type", call.get("type")), ("function", fn)) if v is not None})
        chunk = _dress(self._template[i], i, "")
        chunk["choices"][0]["delta"] = {"tool_calls": deltas}
        return [chunk]

    def _release(self, i: int, final: bool) -> str:
        """Scan what is held for choice `i`; release the part that is safe to send."""
        text = self._held.get(i, "")
        cut = len(text) if final else 0 if self.schema is not None else _safe_end(text)
        found = self.policy.check_output(text)
        if not final:
            # A value still arriving is neither acted on half-seen nor released in part.
            while inside := [f.start for v in found for f in v.findings if f.start < cut < f.end]:
                cut = min(inside)  # only ever decreases: the loop ends
        head = self.policy.judge_answer(text, self.vault, self.verdicts, f"choices[{i}] of the stream", found, cut)
        self._held[i] = text[cut:]
        if final and self.schema is not None and i == 0 and not self._judged:
            self._judged = True
            self._check_schema(head)
        return head

    def _check_schema(self, text: str) -> None:
        assert self.schema is not None
        t0 = time.perf_counter()
        error = validate(text, self.schema)
        v = Verdict.of_schema(self.policy, error, (time.perf_counter() - t0) * 1000)
        self.verdicts.append(v.record())
        if error is not None:
            raise GuardrailBlocked(v, "the answer", output=True)


def _safe_end(text: str) -> int:
    cut = max(0, len(text) - HOLD)
    floor = max(0, len(text) - LONGEST)
    for pattern in (_OPEN_BLOCK, _OPEN_LINK):
        m = pattern.search(text, floor)
        if m is not None:
            cut = min(cut, m.start())
    run = len(text)  # a run of token characters reaching the end (walked back, not searched: linear)
    while run > floor and text[run - 1] in _TOKEN_CHARS:
        run -= 1
    if len(text) - run >= 16:
        cut = min(cut, run)
    # Never split a placeholder: one opened before the cut and not closed before it waits whole.
    opened = text.rfind("<", max(0, cut - 48), cut)
    if opened != -1 and ">" not in text[opened:cut]:
        cut = opened
    partial = PARTIAL_PLACEHOLDER.search(text, cut)
    if partial is not None:
        cut = min(cut, partial.start())
    return cut


def _dress(template: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    """A content chunk carrying released text, shaped like the upstream's chunks."""
    return {**{k: v for k, v in template.items() if k not in ("choices", "usage")},
            "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}]}
