"""Disallowed topics by configured terms: whole words or phrases, case- and accent-insensitive.

Matching runs on an NFKD-folded, lower-cased copy whose offsets map one-to-one back to the text
(every character folds to exactly one), so findings point at the original words.
"""

from __future__ import annotations

import re
import unicodedata

from ostiary.guardrails.base import Finding


def _fold(text: str) -> str:
    # One character in, one character out: strip accents, lower-case.
    out = []
    for ch in text:
        base = unicodedata.normalize("NFKD", ch)[:1] if not ch.isascii() else ch
        out.append(base.lower() if len(base.lower()) == 1 else ch)
    return "".join(out)


class TopicScanner:
    name = "topics"

    def __init__(self, terms: list[str]) -> None:
        words = sorted({_fold(t.strip()) for t in terms if t.strip()}, key=len, reverse=True)
        parts = [r"\s+".join(re.escape(w) for w in term.split()) for term in words]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)") if parts else None

    def scan(self, text: str) -> list[Finding]:
        if self._pattern is None:
            return []
        return [Finding("TOPIC", m.start(), m.end(), 1.0) for m in self._pattern.finditer(_fold(text))]
