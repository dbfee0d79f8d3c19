"""`POST /v1/guardrails/scan`: the guardrail engine as a service for applications.

RAG pipelines and agents scan documents, retrieved passages and tool results with a named policy
(default: the one that applies to the caller) before they reach a model. The answer lists every
verdict and, for span scanners, typed spans with offsets into the text sent (never the values), the
overall action, and the text with `redact` findings replaced by placeholders.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ostiary.errors import InvalidRequest, NotFound
from ostiary.guardrails.policy import Policy
from ostiary.guardrails.redact import Vault
from ostiary.guardrails.stage import GuardrailsStage, input_texts
from ostiary.pipeline.call import Call

_RANK = {"allow": 0, "error": 1, "flag": 2, "redact": 3, "block": 4}


class ScanRequest(msgspec.Struct, forbid_unknown_fields=True):
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    policy: str | None = None
    direction: Literal["input", "output"] = "input"
    segment: Literal["system", "user", "assistant", "tool"] = "tool"  # for `text`: retrieved content by default


def scan(stage: GuardrailsStage | None, raw: bytes, call: Call) -> dict[str, Any]:
    try:
        req = msgspec.json.decode(raw or b"{}", type=ScanRequest)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"invalid scan request: {e}") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e}", code="invalid_json") from None
    if (req.text is None) == (req.messages is None):
        raise InvalidRequest("Send either `text` or `messages`.", param="text")
    if stage is None:
        raise NotFound("No guardrail policies are configured on this gateway.", code="policy_not_found")
    policy = stage.policies.get(req.policy) if req.policy else stage.policy_for(call)
    if policy is None:
        known = ", ".join(stage.policies) or "none"
        raise NotFound(f"No guardrail policy {req.policy or '(default)'!r}; known: {known}.", param="policy",
                       code="policy_not_found")
    if req.messages is not None:
        texts = [(where, seg, text) for where, seg, text, _ in input_texts({"messages": req.messages})]
    else:
        texts = [("text", "assistant" if req.direction == "output" else req.segment, req.text or "")]
    return _scan(policy, texts, req.direction)


def _scan(policy: Policy, texts: list[tuple[str, str, str]], direction: str) -> dict[str, Any]:
    vault, verdicts, findings, redacted = Vault(), [], [], {}
    for where, segment, text in texts:
        spans = []
        found = policy.check_input(text, segment) if direction == "input" else policy.check_output(text, segment)
        for v in found:
            verdicts.append({**v.record(), "where": where})
            findings += [{"scanner": v.scanner, "entity": f.entity, "start": f.start, "end": f.end,
                          "score": round(f.score, 4), "where": where} for f in v.findings
                         if f.entity != "SCANNER_FAILURE"]
            if v.action == "redact":
                spans += v.findings
        redacted[where] = vault.redact(text, spans) if spans else text
    action = max((v["action"] for v in verdicts), key=_RANK.__getitem__, default="allow")
    return {"object": "guardrails.scan", "policy": policy.name, "version": policy.version, "action": action,
            "verdicts": verdicts, "findings": findings,
            "redacted": redacted["text"] if list(redacted) == ["text"] else redacted}
