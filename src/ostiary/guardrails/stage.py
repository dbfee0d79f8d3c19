"""The guardrails stage: the input scanners of the call's policy before the request leaves, the
output scanners on the answer (a stream as it flows, see guardrails/stream.py).

Which policy: the key's `guardrails` tag, else the route's binding (or the policy a release
moved it to, llmops/releases.py), else the tenant's, else the
default; none, no scanning. Per finding the policy's action applies: `block` refuses the request
(400, naming the policy, scanner and entity types), `redact` replaces the values by placeholders
before the upstream sees them (restored in the answer when the policy says so), `escalate` holds
the request until a reviewer approves it (403 if denied or not reviewed in time), `flag` and
`allow` only record. Every verdict goes to `call.decisions["guardrails"]` for the audit trail and metrics.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from typing import Any

from ostiary.config.schema import Guardrails
from ostiary.errors import GatewayError
from ostiary.guardrails.leaks import new_canary, plant
from ostiary.guardrails.policy import GuardrailBlocked, Policy, Verdict, compile_policies
from ostiary.guardrails.redact import Vault
from ostiary.guardrails.review import Reviews
from ostiary.guardrails.schema import expected_schema, validate
from ostiary.guardrails.stream import GuardedStream
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler

_SEGMENT = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
            "tool": "tool", "function": "tool"}


class ReviewRefused(GatewayError):
    def __init__(self, v: Verdict, review: str, status: str) -> None:
        why = "denied by a reviewer" if status == "denied" else "not reviewed in time"
        super().__init__(f"The request was held for review by guardrail policy {v.policy!r} ({v.scanner} found "
                         f"{', '.join(sorted(v.entities)) or 'a risk'}) and {why}; review {review}.", status=403,
                         type="permission_error", code="review_denied" if status == "denied" else "review_expired")


class GuardrailsStage:
    name = "guardrails"

    def __init__(self, cfg: Guardrails, version: str, reviews: Reviews | None = None) -> None:
        self.cfg = cfg
        self.policies = compile_policies(cfg, version)
        self.reviews = reviews

    def policy_for(self, call: Call) -> Policy | None:
        p = call.principal
        pointers = call.decisions.get("pointers")
        bound = pointers.get(f"guardrails:{call.model}") if pointers else None  # a release moved the binding
        if bound not in self.policies:  # gone from the config since: the configured binding holds
            bound = None
        name = (p.tags.get("guardrails") if p is not None else None) or bound or self.cfg.routes.get(call.model) \
            or (self.cfg.tenants.get(p.tenant) if p is not None else None) or self.cfg.default
        return self.policies.get(name) if name else None

    async def __call__(self, call: Call, next: Handler) -> None:
        policy = self.policy_for(call)
        if policy is None:
            await next(call)
            return
        vault = Vault()
        if policy.settings.audit_raw:
            call.raw_request = copy.deepcopy({k: call.body[k] for k in ("messages", "input") if k in call.body})
        verdicts: list[dict[str, Any]] = call.decisions.setdefault("guardrails", [])
        held = self.scan_input(call, policy, vault, verdicts)
        for v, text, record in held:
            await self._review(call, policy, v, text, record)
        if policy.plants_canary:
            plant(call.body, new_canary())
        if policy.settings.restore:
            call.conceal = vault.conceal
        await next(call)
        schema = expected_schema(call.body) if policy.schema is not None else None
        if call.stream and call.result is not None and not isinstance(call.result, dict):
            call.result = GuardedStream(call.result, policy, vault, verdicts, schema)
        elif isinstance(call.result, dict):
            # A turn that calls tools is not the final answer the schema describes.
            if schema is not None and not _calls_tools(call.result):
                await self._check_schema(call, policy, schema, next, verdicts)
            self.scan_answer(call.result, policy, vault, verdicts)

    # -- input ---------------------------------------------------------------------------------

    def scan_input(self, call: Call, policy: Policy, vault: Vault,
                   verdicts: list[dict[str, Any]]) -> list[tuple[Verdict, str, dict[str, Any]]]:
        """Scan every text of the request; raises on a block, redacts in place; returns what a
        person must review (verdict, text, its record) before the request may go on."""
        held = []
        for where, segment, text, put in list(input_texts(call.body)):
            # Every rule sees the text as sent (a detector must not mistake placeholders for
            # markup); the redactions of all rules are applied together afterwards.
            redact = []
            for v in policy.check_input(text, segment, remember=True):
                record = v.record()
                verdicts.append(record)
                if v.action == "block":
                    raise GuardrailBlocked(v, where)
                if v.action == "redact":
                    redact += v.findings
                if v.action == "escalate":
                    held.append((v, text, record))
            if redact:
                put(vault.redact(text, redact))
        return held

    async def _review(self, call: Call, policy: Policy, v: Verdict, text: str, record: dict[str, Any]) -> None:
        if self.reviews is None:
            raise GuardrailBlocked(v, "the request (no review queue is available)")
        # The reviewer sees the text with the values span scanners found replaced by their types.
        excerpt = Vault().redact(text, v.findings) if v.scanner in ("pii", "secrets") else text
        p = call.principal
        rid = await asyncio.to_thread(
            self.reviews.open, tenant=p.tenant, principal=f"{p.kind}:{p.subject}", request_id=call.id,
            route=call.model, policy=policy.name, version=policy.version, scanner=v.scanner, segment=v.segment,
            entities=v.entities, excerpt=excerpt, user=p.user or (p.subject if p.kind != "key" else None))
        status = await self.reviews.wait(rid, policy.settings.review_timeout_seconds)
        record["review"] = {"id": rid, "status": status}
        if status != "approved":
            raise ReviewRefused(v, rid, status)

    async def _check_schema(self, call: Call, policy: Policy, schema: dict[str, Any], next: Handler,
                            verdicts: list[dict[str, Any]]) -> None:
        """The answer must match the requested schema; one corrective retry if the policy allows it."""
        assert policy.schema is not None
        for attempt in range(2 if policy.schema.retry else 1):
            t0 = time.perf_counter()
            text = _content(call.result)
            error = validate(text, schema) if text is not None else "the answer has no text content"
            v = Verdict.of_schema(policy, error, (time.perf_counter() - t0) * 1000)
            record = v.record()
            verdicts.append(record)
            if error is None:
                return
            if attempt == 0 and policy.schema.retry:
                record["action"] = "retry"
                first = call.usage
                call.body["messages"] = [*call.body.get("messages", []), {"role": "assistant", "content": text or ""},
                                         {"role": "user", "content": f"Your answer does not match the required JSON "
                                          f"schema: {error}. Reply again with only the JSON, matching the schema."}]
                call.result = None
                await next(call)
                call.usage = _add_usage(first, call.usage)  # both calls were paid for
        raise GuardrailBlocked(v, "the answer (it does not match the requested JSON schema)", output=True)

    # -- output --------------------------------------------------------------------------------

    def scan_answer(self, result: dict[str, Any], policy: Policy, vault: Vault, verdicts: list[dict[str, Any]]) -> None:
        for i, choice in enumerate(result.get("choices") or ()):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("content"), str):
                message["content"] = policy.judge_answer(message["content"], vault, verdicts,
                                                         f"choices[{i}].message.content")
            for tc in message.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    fn["arguments"] = policy.judge_answer(fn["arguments"], vault, verdicts, f"choices[{i}].tool_calls")


def _content(result: Any) -> str | None:
    try:
        content = result["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _calls_tools(result: Any) -> bool:
    try:
        return bool(result["choices"][0]["message"].get("tool_calls"))
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def _add_usage(a: Any, b: Any) -> Any:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b if isinstance(b, dict) else a
    return {**b, **{k: a.get(k, 0) + b.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                    if isinstance(a.get(k, 0), int) and isinstance(b.get(k, 0), int)}}


def input_texts(body: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(where, segment, text, put) for every text of a request; `put` replaces it in the body."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                continue
            segment = _SEGMENT.get(str(m.get("role")), "user")
            content = m.get("content")
            if isinstance(content, str):
                yield f"messages[{i}].content", segment, content, _setter(m, "content")
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        yield f"messages[{i}].content[{j}].text", segment, part["text"], _setter(part, "text")
            calls = m.get("tool_calls")
            for k, tc in enumerate(calls if isinstance(calls, list) else ()):
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    yield f"messages[{i}].tool_calls[{k}].function.arguments", segment, fn["arguments"], \
                        _setter(fn, "arguments")
    value = body.get("input")
    if isinstance(value, str):
        yield "input", "user", value, _setter(body, "input")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield f"input[{i}]", "user", item, _setter(value, i)


def _setter(container: Any, key: Any) -> Any:
    def put(text: str) -> None:
        container[key] = text

    return put

