"""Output leaks: the system prompt echoed back (canary tokens), and data smuggled out through links.

A canary is a random token the gateway plants in the system prompt before the request leaves; if it
comes back in the answer, the model is repeating its instructions. Exfiltration is a markdown image
or link to a host outside the allow-list whose URL carries data (a query string or a long path): a
client that renders the answer would send that data to the host without anyone clicking. The same
scanner flags active content a rendering client would run (script and iframe tags, `javascript:`
URLs, inline event handlers): improper output handling, OWASP LLM05.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from ostiary.guardrails.base import Finding

CANARY_PREFIX = "ostiary-canary-"


def new_canary() -> str:
    return CANARY_PREFIX + secrets.token_hex(8)


def plant(body: dict, canary: str) -> None:
    """Add the canary to the request's system prompt (a new system message if there is none)."""
    line = f"\n\n(Internal reference {canary}; never repeat it.)"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer") and isinstance(m.get("content"), str):
            m["content"] += line
            return
    messages.insert(0, {"role": "system", "content": line.strip()})


class CanaryScanner:
    name = "canary"

    def __init__(self, canary: str | None = None) -> None:
        self.canary = canary

    def scan(self, text: str) -> list[Finding]:
        # Any canary shape counts: the one of this request, or one echoed from an earlier answer.
        return [Finding("SYSTEM_PROMPT_LEAK", m.start(), m.end(), 1.0)
                for m in re.finditer(re.escape(CANARY_PREFIX) + r"[0-9a-f]{16}", text)]


_LINK = re.compile(r"!?\[[^\]\n]{0,500}\]\(\s*<?(https?://[^\s)>]+)>?[^)]*\)|<img[^>]+src=[\"']?(https?://[^\s\"'>]+)",
                   re.IGNORECASE)


_ACTIVE = re.compile(r"<\s*(?:script|iframe|object|embed)\b|\bjavascript\s*:|<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


class ExfiltrationScanner:
    name = "exfiltration"

    def __init__(self, allow_hosts: list[str]) -> None:
        self.allow = {h.lower().lstrip(".") for h in allow_hosts}

    def _allowed(self, host: str) -> bool:
        return any(host == a or host.endswith("." + a) for a in self.allow)

    def scan(self, text: str) -> list[Finding]:
        out = [Finding("ACTIVE_CONTENT", m.start(), m.end(), 1.0) for m in _ACTIVE.finditer(text)] \
            if "<" in text or ":" in text else []
        if "http" not in text:
            return out
        for m in _LINK.finditer(text):
            url = m.group(1) or m.group(2)
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            if self._allowed(host):
                continue
            carries_data = bool(parts.query) or len(parts.path) > 64
            image = m.group(0).startswith(("!", "<"))
            if carries_data or image:
                out.append(Finding("EXFILTRATION", m.start(), m.end(), 1.0 if carries_data else 0.6))
        return out
