"""Reversible redaction: values replaced by typed placeholders (`<EMAIL_1>`), restored in the answer.

One `Vault` per request. The same value gets the same placeholder wherever it appears in the request,
so the model can still reason about "the same e-mail address"; the answer's placeholders are put
back for the caller when the policy allows. The vault never prints its values (repr, logs, errors).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ostiary.guardrails.base import Finding

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
# The end of a text that could be the beginning of a placeholder still being streamed.
PARTIAL_PLACEHOLDER = re.compile(r"<(?:[A-Z][A-Z0-9_]*(?:_\d*)?)?$")


class Vault:
    def __init__(self) -> None:
        self._placeholder_of: dict[tuple[str, str], str] = {}
        self._value_of: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._restorable: set[str] = set()  # placeholders of the prompt's values, not the answer's

    def __repr__(self) -> str:
        return f"<Vault {len(self._value_of)} values>"

    def __len__(self) -> int:
        return len(self._value_of)

    def placeholder(self, entity: str, value: str, restorable: bool = True) -> str:
        key = (entity, value)
        found = self._placeholder_of.get(key)
        if found is None:
            n = self._counts[entity] = self._counts.get(entity, 0) + 1
            found = self._placeholder_of[key] = f"<{entity}_{n}>"
            self._value_of[found] = value
        if restorable:
            self._restorable.add(found)
        return found

    def redact(self, text: str, findings: Iterable[Finding], restorable: bool = True) -> str:
        """`text` with each finding's span replaced by its placeholder.
        Values found in the answer (`restorable=False`) stay redacted: only what the caller sent
        comes back."""
        # Overlapping spans (of different rules) become their union, named after the longest, so
        # no part of either value stays in clear.
        merged: list[list[Any]] = []  # [start, end, entity, length of the naming span]
        for f in sorted(findings, key=lambda f: (f.start, -f.end)):
            if merged and f.start < merged[-1][1]:
                last = merged[-1]
                if f.end - f.start > last[3]:
                    last[2], last[3] = f.entity, f.end - f.start
                last[1] = max(last[1], f.end)
            else:
                merged.append([f.start, f.end, f.entity, f.end - f.start])
        out, at = [], 0
        for start, end, entity, _ in merged:
            out.append(text[at:start])
            out.append(self.placeholder(entity, text[start:end], restorable))
            at = end
        out.append(text[at:])
        return "".join(out)

    def conceal(self, text: str) -> str:
        """`restore` undone: the restored values in `text` back to their placeholders (longest first,
        so a value that contains another is replaced whole)."""
        for placeholder in sorted(self._restorable, key=lambda p: -len(self._value_of[p])):
            text = text.replace(self._value_of[placeholder], placeholder)
        return text

    def restore(self, text: str) -> str:
        """`text` with the placeholders of the prompt's values replaced by them; others stay."""
        if not self._restorable or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._value_of[m.group(0)] if m.group(0) in self._restorable
                               else m.group(0), text)
