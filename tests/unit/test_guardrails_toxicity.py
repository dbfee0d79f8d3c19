"""The toxicity signal with its shipped weights: insults and slurs flagged (also behind leetspeak),
ordinary prompts not."""

from __future__ import annotations

import pytest

from ostiary.guardrails.toxicity import ToxicityScanner


@pytest.fixture(scope="module")
def scanner() -> ToxicityScanner:
    return ToxicityScanner()


@pytest.mark.parametrize("text", [
    "you are a stupid fucking bitch",
    "shut up you worthless piece of shit",
    "all you hoes are trash",
    "you dumb b1tch",
])  # fmt: skip
def test_insults_are_flagged(scanner: ToxicityScanner, text: str) -> None:
    a = scanner.assess(text)
    assert a.flagged, a
    [finding] = scanner.scan(text)
    assert finding.entity == "TOXICITY" and finding.score >= 0.5 and (finding.start, finding.end) == (0, len(text))


@pytest.mark.parametrize("text", [
    "What is the capital of Australia?",
    "Write a thank-you email to my colleague for helping with the project.",
    "How do I reverse a linked list in Java?",
    "Can you explain the history of the civil rights movement?",
    "Quelle est la capitale de l'Australie ?",
])  # fmt: skip
def test_ordinary_prompts_are_not_flagged(scanner: ToxicityScanner, text: str) -> None:
    assert not scanner.assess(text).flagged
    assert scanner.scan(text)[0].score < 0.5


def test_blank_text_has_no_finding(scanner: ToxicityScanner) -> None:
    assert scanner.scan("  \n") == []
