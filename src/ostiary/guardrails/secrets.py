"""Secrets scanner: credentials in a text (cloud and SaaS keys, private keys, JWTs, passwords).

Finds provider credentials by their published formats (AWS, GCP, Azure, OpenAI, Anthropic,
GitHub, GitLab, Slack, Stripe, Twilio, SendGrid, npm), PEM private-key blocks (also inside JSON,
as in a GCP service-account file), JWTs whose header decodes to JSON with an "alg", passwords in
URLs and connection strings (the span is the password only), and values assigned to a secret-like
name ("password", "api_key", "client_secret", "token", ...) when they look like a credential:
a password of mixed character classes, or a token above a Shannon-entropy threshold.

Speed: almost every format has a separator right after a short prefix ("sk-", "ghp_", "xoxb-",
"SG.", "://", "key=") or starts with a capital that is rare in prose ("AKIA", "AIza", "SK").
One compiled regex whose first character is one of `- _ . : = A S` walks the text once; each
alternative checks its prefix with a fixed-width lookbehind or a literal, so ordinary prose
punctuation fails inside the regex engine. Phrases such as "my password is hunter2" are looked
for only around the places where the lower-cased text contains a password or secret word.

Not in scope: credentials with no recognisable format and no secret-like name near them, and
secrets split across messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Final

from ostiary.guardrails.base import Finding, choose_entities

__all__ = ["SECRET_ENTITIES", "SecretsScanner", "shannon_entropy"]

SECRET_ENTITIES: Final = (
    "PRIVATE_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GCP_API_KEY",
    "AZURE_STORAGE_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "SLACK_WEBHOOK",
    "STRIPE_KEY",
    "TWILIO_API_KEY",
    "SENDGRID_API_KEY",
    "NPM_TOKEN",
    "JWT",
    "PASSWORD",
    "GENERIC_SECRET",
)
_RANK: Final = {e: i for i, e in enumerate(SECRET_ENTITIES)}

_B64URL = "[A-Za-z0-9_-]"
_VALUE_STOP = " \t\r\n\"'`,;<>()[]{}"
# After the ":" or "=" of `name: value`: a name char (or quote) just before, then a value of 6
# chars or more that is not only lower-case letters, dots and dashes (prose after "Note:" is).
_KV = r"""(?:(?<=[A-Za-z0-9_"'\]].)|(?<=[A-Za-z0-9_"'\]][ \t].)|(?<=[A-Za-z0-9_"'\]][ \t]{2}.))
    [ \t]{0,3}=?>?[ \t]{0,3}["'`]?(?=[^\s"'`,;<>()\[\]{}]{6,})(?=[a-z.-]*[^a-z.\s"'`,;<>()\[\]{}-])"""

# The one pass (see the module docstring). The top level branches on the first character, a
# literal each, so the engine's cheap first-character test does the dispatching; each alternative
# goes on right after that character.
_PASS = re.compile(
    rf"""-(?:
        # "sk-...", "sk-ant-...", "sk-proj-...", "xoxb-...", "glpat-...": a lower-case word, then
        # a long token with at least one digit or capital (code identifiers and prose have none)
        (?P<dash>(?<=[a-z]-)(?=[a-z_-]*[A-Z0-9])[A-Za-z0-9_-]{{16,}}+)
      | (?P<pem>(?=----BEGIN[A-Z0-9 ]{{0,40}}PRIVATE[ ]KEY-----)))
  | _(?P<under>(?<=[a-z]_)(?=[a-z_]*[A-Z0-9])[A-Za-z0-9_]{{16,}}+)  # "ghp_", "github_pat_", "sk_live_"
  | \.(?:  # SendGrid "SG.xxx.yyy"; a JWT's first dot, before "eyJ" (a JSON object in base64url)
        (?P<sendgrid>(?<=SG\.){_B64URL}{{22}}\.{_B64URL}{{43}})
      | (?P<jwt>(?=eyJ)(?<={_B64URL}{{8}}\.)))
  | :(?:
        # scheme://user:password@host, Slack webhooks
        (?P<url>(?<=[A-Za-z0-9]:)//(?:hooks\.slack\.com/|[^\s/:@]{{0,64}}:[^\s/@]{{1,128}}@))
        # name: value, where the value is not plain lower-case words
      | (?P<kv>{_KV}))
  | =(?![=~])(?P<kv2>{_KV})  # name = value (not "==", "=~")
    # prefixes with no separator: AWS key ids, GCP API keys, Twilio API keys
  | A(?:(?P<aws>(?:KIA|SIA|BIA|CCA)[A-Z0-9]{{16}}(?![A-Za-z0-9]))
      | (?P<gcp>Iza[A-Za-z0-9_-]{{35}}(?![A-Za-z0-9_-])))
  | S(?P<twilio>K[0-9a-fA-F]{{32}}(?![A-Za-z0-9]))""",
    re.VERBOSE,
)

# Formats recognised after the pass found their prefix.
_OPENAI = re.compile(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}")
_ANTHROPIC = re.compile(r"sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_-]{80,}")
_SLACK_TOKEN = re.compile(r"xox[abprse]-(?:[0-9]+-)+[A-Za-z0-9-]{10,}|xox[abprse]-[A-Za-z0-9-]{20,}")
_GITLAB = re.compile(r"(?:glpat|glptt|gldt|glrt|glcbt|glsoat|glffct|glimt|glagent|glft|gloas)-[A-Za-z0-9_-]{20,}")
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,}")
_STRIPE = re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}|whsec_[A-Za-z0-9]{24,}")
_NPM = re.compile(r"npm_[A-Za-z0-9]{36}")
_LITERAL_KINDS: Final = {
    "aws": ("AWS_ACCESS_KEY", 0.95),
    "gcp": ("GCP_API_KEY", 0.95),
    "twilio": ("TWILIO_API_KEY", 0.8),
}
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----")
# a truncated block: the header and the base64 lines after it (real or JSON-escaped line breaks)
_PEM_BODY = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[ \t]*(?:\r?\n|\\r?\\n)[A-Za-z0-9+/=]+)*")
_SLACK_WEBHOOK = re.compile(r"//hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}")
_JWT_TAIL = re.compile(rf"{_B64URL}+\.{_B64URL}*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_LOWER_WORDS = re.compile(r"[a-z]+(?:[ _.-][a-z]+)*")
# "settings.api_key", "d.api_key.get_secret_value": a reference to a secret in code, not one
_CODE_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")

# Names that make what is assigned to them a secret: the last word before ":" or "=" must end
# with one of these (lower case; "AWS_SECRET_ACCESS_KEY", "client_secret", "apiKey", "X-Api-Key").
_SECRET_NAMES: Final = (
    "password", "passwd", "pwd", "pass", "passwort", "kennwort", "contraseña", "wachtwoord",
    "motdepasse", "secret", "token", "apikey", "api_key", "api-key", "accesskey", "access_key",
    "secretkey", "secret_key", "privatekey", "private_key", "auth", "authorization", "credential",
    "credentials", "accountkey", "sharedaccesskey", "clientsecret", "client_secret", "key",
    "sig", "signature", "bearer",
)
_PASSWORD_NAMES: Final = ("password", "passwd", "pwd", "pass", "passwort", "kennwort", "contraseña", "wachtwoord", "motdepasse")
_PLACEHOLDER = re.compile(
    r"(?i)\*+|x{4,}|\.{3,}|<[^>]*>?|\{\{.*|\$\{.*|%\(.*|\[.*\]|your[_-]?.*|changeme|example|redacted|none|null|"
    r"true|false|undefined|(?:process\.)?env\b.*|os\.environ.*|getenv.*|secrets?\..*|config\..*|settings\..*"
)
# "my password is hunter2", "le mot de passe est ...", "das Passwort lautet ...": only looked for
# when the lower-cased text contains one of these stems
_PHRASE_STEMS: Final = ("pass", "pwd", "kennwort", "contraseña", "wachtwoord", "secret", "token")
_PHRASE = re.compile(
    r"""(?i)(?<!\w)(?:password|passwort|passwd|pwd|pass(?:code|phrase)|mot[ ]de[ ]passe|kennwort|contraseña
      |wachtwoord|secret|token|api[ ]key|access[ ]key)
    (?:[ ](?:for|of|de|du|für|von|del|della|di|van|voor)[ ][\w.@-]{1,40}){0,2}
    [ ](?:is|was|est|ist|lautet|es|era|è|e|is[ ]nu|:)[ ]+["'`]?(?P<v>[^\s"'`,;<>]{6,})""",
    re.VERBOSE,
)


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


Candidate = tuple[int, int, str, float]  # start, end, entity, score


class SecretsScanner:
    """Finds credentials; see the module docstring. Pure and thread-safe once built.

    `entities` restricts the search (default: all of `SECRET_ENTITIES`); `entropy_threshold` (bits
    per character) is what an assigned token of 16 characters or more must reach to count as a
    GENERIC_SECRET (hex tokens, which cannot pass 4 bits, need 3 bits less `hex_allowance`);
    findings below `min_score` are dropped.
    """

    name = "secrets"

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        *,
        entropy_threshold: float = 3.5,
        hex_allowance: float = 0.5,
        min_score: float = 0.5,
    ) -> None:
        chosen = choose_entities(SECRET_ENTITIES, entities, "secret")
        self.entities = chosen
        self.entropy_threshold = entropy_threshold
        self.hex_allowance = hex_allowance
        self.min_score = min_score

    def scan(self, text: str) -> list[Finding]:
        out: list[Candidate] = []
        pos = 0
        search = _PASS.search
        while (m := search(text, pos)) is not None:
            end = self._dispatch(text, m, out)
            pos = max(end, m.start() + 1)
        if "PASSWORD" in self.entities or "GENERIC_SECRET" in self.entities:
            low = text.lower()
            if len(low) == len(text):  # (lower-casing a few letters changes the length: skip them)
                for stem in _PHRASE_STEMS:
                    i = low.find(stem)
                    while i >= 0:
                        self._phrases(text, max(0, i - 12), i + 96, out)
                        i = low.find(stem, i + 96)
        return self._resolve(out, text)

    # -- the pass ----------------------------------------------------------------------------------

    def _dispatch(self, text: str, m: re.Match[str], out: list[Candidate]) -> int:
        kind = m.lastgroup
        sep = m.start()
        if kind == "dash" or kind == "under":
            return self._prefixed(text, sep, m.end(), out)
        if kind == "pem":
            return self._pem(text, sep, out)
        if kind in _LITERAL_KINDS:
            start = m.start()
            if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
                return m.end()  # inside a longer token
            entity, score = _LITERAL_KINDS[kind]
            out.append((start, m.end(), entity, score))
            return m.end()
        if kind == "sendgrid":
            out.append((sep - 2, m.end(), "SENDGRID_API_KEY", 0.95))
            return m.end()
        if kind == "jwt":
            return self._jwt(text, sep, out)
        if kind == "url":
            return self._url(text, sep, out)
        return self._assignment(text, sep, m.end(), out)

    def _prefixed(self, text: str, sep: int, end: int, out: list[Candidate]) -> int:
        """A token after "<word>-" or "<word>_": which provider, if any, the word names."""
        start = sep
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_") and sep - start < 12:
            start -= 1
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
            return end  # the prefix is the tail of a longer word: not a key's start
        for rx, entity, score in _PREFIXED:
            k = rx.match(text, start)
            if k is not None and (k.end() == len(text) or not (text[k.end()].isalnum() or text[k.end()] in "_-")):
                out.append((start, k.end(), entity, score))
                return k.end()
        return end

    def _pem(self, text: str, sep: int, out: list[Candidate]) -> int:
        start = sep
        end_marker = _PEM_END.search(text, start, start + 16384)
        if end_marker is not None:
            end = end_marker.end()
        else:  # truncated: the header and the base64 lines that follow it
            body = _PEM_BODY.match(text, start)
            end = body.end() if body is not None else start + 10
        out.append((start, end, "PRIVATE_KEY", 1.0))
        return end

    def _jwt(self, text: str, dot: int, out: list[Candidate]) -> int:
        start = dot
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-") and dot - start < 2048:
            start -= 1
        header = text[start:dot]
        if not header.startswith("eyJ"):
            return dot + 1
        tail = _JWT_TAIL.match(text, dot + 1)
        if tail is None or not _jwt_header_ok(header):
            return dot + 1
        out.append((start, tail.end(), "JWT", 0.95))
        return tail.end()

    def _url(self, text: str, colon: int, out: list[Candidate]) -> int:
        hook = _SLACK_WEBHOOK.match(text, colon + 1)
        if hook is not None:
            start = colon
            while start > 0 and text[start - 1].isalpha():
                start -= 1
            out.append((start, hook.end(), "SLACK_WEBHOOK", 0.95))
            return hook.end()
        userinfo_start = colon + 3
        at = text.find("@", userinfo_start)
        pw_start = text.find(":", userinfo_start, at) + 1
        password = text[pw_start:at]
        if password and not _PLACEHOLDER.fullmatch(password) and not _is_username_like(password):
            out.append((pw_start, at, "PASSWORD", 0.9))
        return at + 1

    def _assignment(self, text: str, sep: int, end: int, out: list[Candidate]) -> int:
        """`name: value` or `name = value`: a secret when the name is secret-like and the value
        looks like a credential rather than a word, a placeholder, a UUID or a hash."""
        word = _name_before(text, sep)
        if word is None:
            return end
        v_start = end
        v_end = v_start
        n = len(text)
        while v_end < n and text[v_end] not in _VALUE_STOP:
            v_end += 1
        value = text[v_start:v_end]
        if word.endswith(("authorization", "bearer")) and value in ("Bearer", "Basic", "Token"):
            return self._assignment(text, v_end, v_end + 1, out) if v_end < n and text[v_end] == " " else v_end
        while value and value[-1] in ".:":
            value = value[:-1]
            v_end -= 1
        finding = self._classify_value(word, value, text, v_start)
        if finding is not None:
            out.append((v_start, v_end, finding[0], finding[1]))
        # The pass goes on inside the value: a provider format there ("sk-...", "AKIA...") is
        # more specific than GENERIC_SECRET and wins the overlap.
        return end

    def _classify_value(self, name: str, value: str, text: str, at: int) -> tuple[str, float] | None:
        if len(value) < 6 or _PLACEHOLDER.fullmatch(value) or _UUID.fullmatch(value) or _CODE_REF.fullmatch(value):
            return None
        if name.endswith(_PASSWORD_NAMES):
            return ("PASSWORD", 0.85) if _password_like(value) else None
        if name.endswith(("accountkey", "sharedaccesskey")) and len(value) >= 40:
            return ("AZURE_STORAGE_KEY", 0.95)
        if len(value) == 40 and "aws" in text[max(0, at - 64) : at].lower() and re.fullmatch(r"[A-Za-z0-9/+]{40}", value):
            return ("AWS_SECRET_KEY", 0.95)
        if self._high_entropy(value):
            return ("GENERIC_SECRET", 0.8)
        return None

    def _high_entropy(self, value: str) -> bool:
        if len(value) < 16 or _LOWER_WORDS.fullmatch(value):
            return False
        threshold = self.entropy_threshold
        if _HEX.fullmatch(value):
            threshold -= self.hex_allowance
        return shannon_entropy(value) >= threshold

    def _phrases(self, text: str, lo: int, hi: int, out: list[Candidate]) -> None:
        for m in _PHRASE.finditer(text, lo, hi):
            value = m.group("v").rstrip(".,:;)")  # sentence punctuation; "!" and "?" may be the password's
            if _PLACEHOLDER.fullmatch(value) or len(value) < 6:
                continue
            word = m.group(0).split()[0].lower()
            is_password = word.startswith(("pass", "pwd", "mot", "kennwort", "contraseña", "wachtwoord"))
            if is_password and _password_like(value):
                out.append((m.start("v"), m.start("v") + len(value), "PASSWORD", 0.8))
            elif not is_password and self._high_entropy(value):
                out.append((m.start("v"), m.start("v") + len(value), "GENERIC_SECRET", 0.8))

    # -- overlaps -----------------------------------------------------------------------------------

    def _resolve(self, cands: list[Candidate], text: str) -> list[Finding]:
        if not cands:
            return []
        kept: list[Candidate] = []
        for c in sorted(
            (c for c in cands if c[3] >= self.min_score and c[2] in self.entities),
            key=lambda c: (-c[3], _RANK[c[2]], c[0] - c[1]),
        ):
            if all(c[1] <= k[0] or c[0] >= k[1] for k in kept):
                kept.append(c)
        kept.sort()
        return [Finding(entity, s, e, round(score, 3)) for s, e, entity, score in kept]


_PREFIXED: Final = (
    (_ANTHROPIC, "ANTHROPIC_API_KEY", 0.95),
    (_OPENAI, "OPENAI_API_KEY", 0.9),
    (_GITHUB, "GITHUB_TOKEN", 0.95),
    (_GITLAB, "GITLAB_TOKEN", 0.95),
    (_SLACK_TOKEN, "SLACK_TOKEN", 0.95),
    (_STRIPE, "STRIPE_KEY", 0.95),
    (_NPM, "NPM_TOKEN", 0.95),
)


def _name_before(text: str, sep: int) -> str | None:
    """The lower-cased name before the ":" or "=" at `sep` when it is secret-like: it ends with
    one of `_SECRET_NAMES` at a word boundary ("db_password", "clientSecret", "X-Api-Key"; not
    "monkey" or "bypass")."""
    window = text[max(0, sep - 48) : sep].rstrip(" \t\"']")
    low = window.lower()
    if not low.endswith(_SECRET_NAMES):  # the common case, decided in C
        return None
    for suffix in _SECRET_NAMES:
        if low.endswith(suffix):
            k = len(window) - len(suffix)
            if k == 0 or not window[k - 1].isalnum() or window[k - 1] == "_" or window[k].isupper():
                return low
    return None


def _jwt_header_ok(header: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _password_like(value: str) -> bool:
    """A password, not a word: two character classes or more, or long and varied."""
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
    return classes >= 2 or (len(value) >= 12 and shannon_entropy(value) >= 3.0)


def _is_username_like(value: str) -> bool:
    # "//host:8080@" is not userinfo; a port or a path piece is not a password
    return value.isdigit()
