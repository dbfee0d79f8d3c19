"""Guardrail policies compiled from the config: scanners built once per config version, run with
their thresholds, entity filters, segments, time budget and failure rule.

`run` is where "a scanner that errors or is too slow blocks unless the policy says fail-open" is
enforced, and where each verdict is recorded: scanner, policy and config version, action, entity
types with counts, best score and time taken; never the values found.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ostiary.config.schema import Check, GuardrailPolicy, Guardrails
from ostiary.errors import GatewayError
from ostiary.guardrails.base import Finding, Scanner
from ostiary.guardrails.redact import Vault

_MEMO_SIZE = 20_000
_MEMO_KEY = os.urandom(16)  # a per-process key: the hashes cannot be matched against guessed texts


def build_scanner(check: Check) -> Scanner:
    # Imported on use: a policy without the learned detectors does not load their weights.
    if check.scanner == "pii":
        from ostiary.guardrails.pii import PiiScanner

        return PiiScanner()
    if check.scanner == "secrets":
        from ostiary.guardrails.secrets import SecretsScanner

        return SecretsScanner()
    if check.scanner == "injection":
        from ostiary.guardrails.injection import InjectionScanner

        # An embedding detector loads its model here, at compile time; a missing extra raises here too.
        return InjectionScanner(detector=check.detector)
    if check.scanner == "toxicity":
        from ostiary.guardrails.toxicity import ToxicityScanner

        return ToxicityScanner()
    if check.scanner == "topics":
        from ostiary.guardrails.topics import TopicScanner

        return TopicScanner(check.terms, check.examples, check.similarity)
    if check.scanner == "canary":
        from ostiary.guardrails.leaks import CanaryScanner

        return CanaryScanner()
    from ostiary.guardrails.leaks import ExfiltrationScanner

    return ExfiltrationScanner(check.allow_hosts)


@dataclass(frozen=True, slots=True)
class Rule:
    check: Check
    scanner: Scanner
    entities: frozenset[str] | None

    def scan(self, text: str, segment: str) -> list[Finding]:
        # Segment-aware scanners (injection) judge retrieved and tool content by their own rules.
        by_segment = getattr(self.scanner, "scan_segment", None)
        return by_segment(text, segment) if by_segment is not None else self.scanner.scan(text)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one scanner found in one text, and what the policy does about it."""

    scanner: str
    policy: str
    version: str
    action: str  # the policy's action, "allow" when nothing was found, "error" when it failed open
    segment: str
    entities: dict[str, int]
    score: float
    ms: float
    findings: list[Finding] = field(repr=False)  # spans, for redaction; never recorded
    error: str | None = None

    @property
    def hit(self) -> bool:
        return bool(self.findings)

    @classmethod
    def of_schema(cls, policy: Policy, error: str | None, ms: float, retried: bool = False) -> Verdict:
        action = "allow" if error is None else "block"
        v = cls("json_schema", policy.name, policy.version, action, "assistant",
                {} if error is None else {"SCHEMA_MISMATCH": 1}, 0.0 if error is None else 1.0, ms, [], error)
        return v

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scanner": self.scanner, "policy": self.policy, "version": self.version,
                               "action": self.action, "segment": self.segment, "entities": self.entities,
                               "score": round(self.score, 4), "ms": round(self.ms, 3)}
        if self.error:
            out["error"] = self.error
        return out


class GuardrailBlocked(GatewayError):
    def __init__(self, v: Verdict, where: str, output: bool = False) -> None:
        found = ", ".join(sorted(v.entities)) or "a failure"
        if v.scanner == "json_schema":
            what = f"the answer does not match the requested JSON schema ({v.error})"
        elif v.error is None:
            what = f"the {v.scanner} scanner found {found}"
        else:
            what = f"the {v.scanner} scanner failed"
        text = "The answer was withheld" if output else "The request was blocked"
        place = "" if v.scanner == "json_schema" else f" in {where}"
        super().__init__(f"{text} by guardrail policy {v.policy!r}: {what}{place}.",
                         status=422 if output else 400, code="guardrail_blocked_output" if output else "guardrail_blocked",
                         param=None if output else where)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    version: str  # the config version the policy came with
    settings: GuardrailPolicy
    input: tuple[Rule, ...]
    output: tuple[Rule, ...]  # scanners of the answer's text
    schema: Check | None = None  # json_schema: the answer must match the schema its request asked for
    # Scanners are pure, and clients resend the same system prompt and the whole conversation with
    # every turn: findings are remembered per (rule, segment, keyed hash of the text). The key is a
    # hash, so no prompt text outlives its request here; the findings hold only types and offsets.
    memo: dict[tuple[int, str, bytes], list[Finding]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def plants_canary(self) -> bool:
        return any(r.check.scanner == "canary" for r in self.output)

    def run(self, rule: Rule, text: str, segment: str, remember: bool = False) -> Verdict:
        """Scan `text` with `rule`; `remember`: look the findings up, and keep them (input texts)."""
        check, name = rule.check, rule.check.scanner
        t0 = time.perf_counter()
        error = None
        key = (id(rule), segment, hashlib.blake2b(text.encode(), digest_size=16, key=_MEMO_KEY).digest()) \
            if remember else None
        try:
            if len(text) > self.settings.max_chars:
                raise ValueError(f"text of {len(text)} characters is above max_chars {self.settings.max_chars}")
            found = self.memo.get(key) if key is not None else None
            if found is None:
                found = rule.scan(text, segment)
                # A scan over its time budget blocks (below) and is not remembered: a retry of the
                # same text must not be let through by a fast memo hit.
                if key is not None and (time.perf_counter() - t0) * 1000 <= self.settings.timeout_ms:
                    if len(self.memo) >= _MEMO_SIZE:
                        self.memo.clear()
                    self.memo[key] = found
        except Exception as e:  # noqa: BLE001 - a broken scanner decides by fail_open, below
            found, error = [], f"{type(e).__name__}: {e}"[:200]
        ms = (time.perf_counter() - t0) * 1000
        if error is None and ms > self.settings.timeout_ms:
            error = f"took {ms:.1f} ms, above the policy's {self.settings.timeout_ms:g} ms"
        if error is not None:
            # Fail closed: the failure itself is the finding, unless the policy lets it pass.
            action = "error" if check.fail_open else "block"
            failure = [] if check.fail_open else [Finding("SCANNER_FAILURE", 0, 0, 1.0)]
            return Verdict(name, self.name, self.version, action, segment, {}, 0.0, ms, failure, error)
        hits = [f for f in found if f.score >= check.threshold
                and (rule.entities is None or f.entity in rule.entities)]
        if not hits:  # the common case, kept cheap
            return Verdict(name, self.name, self.version, "allow", segment, {}, 0.0, ms, hits)
        return Verdict(name, self.name, self.version, check.action, segment, dict(Counter(f.entity for f in hits)),
                       max(f.score for f in hits), ms, hits)


    def check_input(self, text: str, segment: str, remember: bool = False) -> list[Verdict]:
        """The verdicts of the input rules that scan this segment, each on the text as sent."""
        return [self.run(rule, text, segment, remember) for rule in self.input
                if rule.check.segments is None or segment in rule.check.segments]

    def check_output(self, text: str, segment: str = "assistant") -> list[Verdict]:
        """The verdicts of the output rules on a text of the answer."""
        return [self.run(rule, text, segment) for rule in self.output]

    def judge_answer(self, text: str, vault: Vault, verdicts: list[dict[str, Any]], where: str,
                     found: list[Verdict] | None = None, upto: int | None = None) -> str:
        """Carry out the output rules on `text[:upto]` (all of it by default), with their verdicts
        `found` on the whole text if already known: record what was found there (and any failure),
        raise on a block, redact (values found in the answer stay redacted) and put the prompt's
        values back when the policy says so. Answers, streamed text and streamed tool calls alike."""
        if found is None:
            found = self.check_output(text)
        upto = len(text) if upto is None else upto
        redact: list[Finding] = []
        for v in found:
            acted = [f for f in v.findings if f.end <= upto]
            if acted or v.error:
                verdicts.append(v.record())
            if acted and v.action == "block":
                raise GuardrailBlocked(v, where, output=True)
            if v.action == "redact":
                redact += acted
        head = vault.redact(text[:upto], redact, restorable=False) if redact else text[:upto]
        return vault.restore(head) if self.settings.restore else head


def compile_policies(cfg: Guardrails, version: str) -> dict[str, Policy]:
    built: dict[tuple[Any, ...], Scanner] = {}

    def rule(check: Check) -> Rule:
        # Scanners without settings of their own are shared between policies (their weights load once).
        key = (check.scanner, tuple(check.terms), tuple(check.allow_hosts), tuple(check.examples), check.similarity,
               check.detector)
        if key not in built:
            built[key] = build_scanner(check)
        return Rule(check, built[key], frozenset(check.entities) if check.entities else None)

    return {name: Policy(name, version, p, tuple(rule(c) for c in p.input),
                         tuple(rule(c) for c in p.output if c.scanner != "json_schema"),
                         next((c for c in p.output if c.scanner == "json_schema"), None))
            for name, p in cfg.policies.items()}
