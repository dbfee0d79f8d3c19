"""What every scanner returns: findings, each a typed span of the scanned text with a score.

Scanners are pure: text in, findings out, no I/O, no state between calls, safe to call from any
thread. Span scanners (PII, secrets) give the exact offsets of each value so that it can be redacted
or reported without copying it; whole-text detectors (injection, topics, toxicity) give one finding
covering the text. A finding never carries the matched value itself: it must not reach logs or the
audit trail by accident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str  # upper-case type: EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, AWS_ACCESS_KEY, INJECTION, ...
    start: int  # offset of the first character in the scanned text
    end: int  # offset just past the last character
    score: float  # confidence in [0, 1]


class Scanner(Protocol):
    name: str  # e.g. "pii", "secrets", "injection"

    def scan(self, text: str) -> list[Finding]:
        """Findings in `text`, sorted by start offset; overlapping spans of one scanner are merged
        to the most specific, highest-scoring one."""
        ...


def choose_entities(known: Iterable[str], asked: Iterable[str] | None, what: str) -> frozenset[str]:
    """The entity types a scanner should report: all it knows, or those asked for (checked)."""
    known = frozenset(known)
    chosen = known if asked is None else frozenset(e.upper() for e in asked)
    unknown = chosen - known
    if unknown:
        raise ValueError(f"unknown {what} entities: {', '.join(sorted(unknown))}")
    return chosen
