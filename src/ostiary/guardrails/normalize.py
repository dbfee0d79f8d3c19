"""Text normalisation for detectors: undo the tricks that hide an attack from a pattern or a model.

`normalize(text)` gives the view that rules and models read: invisible characters (zero-width,
soft hyphen, word joiner, BOM, variation selectors, Hangul fillers), bidi controls and Unicode tag
characters are removed; then NFKC (full-width letters, mathematical alphanumerics, ligatures, circled
letters, odd spaces); then confusable folding; then lower case and whitespace collapsed to one space.
What was removed or folded is reported in `flags`, since hiding text is itself a signal; text smuggled
in tag characters (U+E0020..E007E mirror ASCII) is decoded into `hidden` so that it can be scanned.

Confusables covered (`CONFUSABLES`): the Cyrillic and Greek letters that look like Latin ones
(а в е к м н о р с т у х і ј ѕ ԁ һ ӏ ԛ ԝ and their capitals; α β ε η ι κ μ ν ο ρ τ υ χ and capitals),
a few Armenian ones (օ ս ց հ) and the dotless i. They are folded only inside words that also contain
a Latin letter (mixed script), or everywhere when the text is mostly Latin: Russian or Greek prose is
left as it is. Anything outside this table (e.g. Cherokee or Canadian syllabics lookalikes) is not folded.

`fold_leet(text)` folds digits and symbols used as letters (1gn0r3 -> ignore) inside words that have
letters too; numbers alone are left as they are.

`decode_payloads(text)` finds embedded base64, hex, URL-encoded, rot13 and Morse text, decodes it and
decodes the result again, bounded in depth, count and size so that a crafted input cannot make it
expensive (zip-bomb style nesting or thousands of candidates). Only decodings that give readable text
are kept.

The ASCII fast path matters: most prompts are ASCII, and then only lower-casing and whitespace
collapsing apply (every other step is a no-op on ASCII), so `normalize` costs a few microseconds on 2 KB.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from urllib.parse import unquote

# --- invisible characters, bidi controls, tag characters ---------------------------------------------

# Zero-width and other invisible formatting characters that have no business between Latin letters.
_INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # arabic letter mark (bidi, but invisible)
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180b-\u180f"  # Mongolian variation selectors and vowel separator
    "\u200b-\u200d"  # zero-width space, non-joiner, joiner
    "\u2060-\u2064"  # word joiner, invisible operators
    "\ufe00-\ufe0f"  # variation selectors
    "\ufeff"  # zero-width no-break space / BOM
    "\U000e0100-\U000e01ef"  # variation selectors supplement (used to smuggle bytes after an emoji)
)
# Directional formatting: marks, embeddings, overrides and isolates (the "Trojan Source" characters).
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_TAGS = "\U000e0000-\U000e007f"

_STRIP_RE = re.compile(f"[{_INVISIBLE}{_BIDI}{_TAGS}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
# Zero-width characters inside a Latin word ("ig\u200bnore") are a trick; between emoji (ZWJ
# sequences) or in Indic and Persian scripts (ZWNJ) they are ordinary, hence the neighbours test.
_INVISIBLE_IN_WORD_RE = re.compile(f"[A-Za-z][{_INVISIBLE}]+[A-Za-z]")
_BIDI_RE = re.compile(f"[{_BIDI}]")
# LRM/RLM/ALM are common in right-to-left text; only embeddings, overrides and isolates are flagged.
_BIDI_CONTROL_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAG_RE = re.compile(f"[{_TAGS}]+")
# Emoji subdivision flags (England, Scotland, Wales) legitimately use tag characters after U+1F3F4.
_FLAG_TAGS_RE = re.compile("\U0001f3f4[\U000e0061-\U000e007a]+\U000e007f")

# --- confusables ---------------------------------------------------------------------------------------

CONFUSABLES: dict[str, str] = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "ё": "e", "ѵ": "v",
    # Cyrillic capitals
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
    "Т": "t", "У": "y", "Х": "x", "І": "i", "Ј": "j", "Ѕ": "s", "Ԁ": "d", "Һ": "h", "Ӏ": "l",
    "Ԛ": "q", "Ԝ": "w",
    # Greek lower case
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ϳ": "j",
    # Greek capitals
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
    "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
    # Armenian and Latin oddities
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ı": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʏ": "y",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)
_CONFUSABLE_CLASS = "".join(CONFUSABLES)
_CONFUSABLE_RE = re.compile(f"[{_CONFUSABLE_CLASS}]")
# A word (letters only) that holds at least one confusable character.
_CONFUSABLE_WORD_RE = re.compile(f"[^\\W\\d_]*[{_CONFUSABLE_CLASS}][^\\W\\d_]*")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

# --- leetspeak -----------------------------------------------------------------------------------------

_LEET_CHARS = "013457@$"
_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# A leet character next to a letter. The pattern starts with a small character class, which the regex
# engine scans for in C: cheap on text that has few digits.
_LEET_HINT_RE = re.compile(r"[013457@$](?:[a-zA-Z]|(?<=[a-zA-Z][013457@$]))")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The detection view of a text. `flags` names the tricks found: "invisible" (zero-width
    characters inside Latin words), "bidi" (embedding/override/isolate controls), "tags" (Unicode tag
    characters outside emoji flags), "homoglyph" (confusables inside Latin words), "nfkc" (compatibility
    characters such as full-width or mathematical letters)."""

    text: str
    flags: frozenset[str]
    hidden: str = ""  # ASCII text smuggled in tag characters, if any


_NO_FLAGS: frozenset[str] = frozenset()


def normalize(text: str) -> Normalized:
    if text.isascii():
        # Nothing to strip, compose or fold: every step below is a no-op on ASCII.
        return Normalized(" ".join(text.lower().split()), _NO_FLAGS)
    flags: set[str] = set()
    hidden = ""
    if _STRIP_RE.search(text):
        if _INVISIBLE_IN_WORD_RE.search(text):
            flags.add("invisible")
        if _BIDI_CONTROL_RE.search(text):
            flags.add("bidi")
        text_wo_flags = _FLAG_TAGS_RE.sub("", text)
        tag_runs = _TAG_RE.findall(text_wo_flags)
        if tag_runs:
            flags.add("tags")
            hidden = " ".join(
                "".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E) for run in tag_runs
            ).strip()
        text = _STRIP_RE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        folded = unicodedata.normalize("NFKC", text)
        if folded != text:
            flags.add("nfkc")
        text = folded
    if not text.isascii() and _CONFUSABLE_RE.search(text):
        text = _fold_confusables(text, flags)
    return Normalized(" ".join(text.lower().split()), frozenset(flags), hidden)


def _fold_confusables(text: str, flags: set[str]) -> str:
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if c in _ASCII_LETTERS)
    # Mostly Latin text: a lookalike word there is a disguise even when every letter is a lookalike.
    mostly_latin = latin * 2 > len(letters)

    def fold(m: re.Match[str]) -> str:
        word = m.group()
        if any(c in _ASCII_LETTERS for c in word):
            flags.add("homoglyph")
            return word.translate(_CONFUSABLE_TABLE)
        if mostly_latin:
            flags.add("homoglyph")
            return word.translate(_CONFUSABLE_TABLE)
        return word

    return _CONFUSABLE_WORD_RE.sub(fold, text)


def fold_leet(text: str) -> str:
    """Fold leetspeak inside words that mix letters with digits or $ @: "1gn0r3 4ll" -> "ignore all".
    Words without letters (numbers, prices) are left as they are, and so is whitespace."""
    pieces: list[str] = []
    done = 0  # text[:done] is already in pieces
    for m in _LEET_HINT_RE.finditer(text):
        if m.start() < done:
            continue  # inside a word already folded
        start = max(text.rfind(" ", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
        end = min((i for i in (text.find(" ", m.end()), text.find("\n", m.end())) if i != -1), default=len(text))
        pieces.append(text[done:start])
        pieces.append(_fold_word(text[start:end]))
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _fold_word(word: str) -> str:
    if not any(c.isalpha() for c in word):
        return word
    return word.translate(_LEET_TABLE)


def has_leet(text: str) -> bool:
    """Whether some word mixes letters with leet characters (a cheap test before `fold_leet`)."""
    return _LEET_HINT_RE.search(text) is not None


# --- embedded payloads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded embedded payload: how it was encoded, how deep (1 = found in the text itself), and its
    decoded text (not normalised: run `normalize` on it)."""

    encoding: str  # "base64", "hex", "url", "rot13", "morse"
    depth: int
    text: str


# Candidates: long runs of the alphabet of each encoding. Lengths are minimums for a payload that can
# hold an instruction (16 base64 chars = 12 bytes) and that would rarely be an ordinary word.
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|[A-Za-z0-9_-]{20,}")
_HEX_RE = re.compile(r"(?:(?:0x|\\x)?[0-9a-fA-F]{2}[:,]?){8,}")
_URL_RE = re.compile(r"\S*%[0-9a-fA-F]{2}\S*%[0-9a-fA-F]{2}\S*")  # a chunk with two escapes or more
# Rot13 of very common English words (the, and, you, your, is, to, of, are, ignore, instructions,
# previous, system, prompt, all, now, from, with): two different ones in a text is enough to try rot13.
_ROT13_HINTS_LOWER = frozenset(
    ("gur", "naq", "lbh", "lbhe", "vf", "gb", "bs", "ner", "vtaber", "vafgehpgvbaf", "cerivbhf", "flfgrz",
     "cebzcg", "nyy", "abj", "sebz", "jvgu")
)
_ROT13_HINTS = _ROT13_HINTS_LOWER | {w.capitalize() for w in _ROT13_HINTS_LOWER}
MIN_PAYLOAD = 16  # shortest run searched: 16 base64 characters carry 12 bytes, 16 hex digits 8
MAX_DEPTH = 2  # a payload inside a payload inside the text, no deeper
MAX_PAYLOADS = 8  # decoded payloads kept per call, all depths together
MAX_CANDIDATES = 32  # candidate strings tried per text, so a text of many short runs stays cheap
MAX_PAYLOAD_CHARS = 16_384  # decoded characters kept per call, all payloads together
MAX_INPUT_CHARS = 262_144  # text beyond this is not searched for payloads


def _printable(text: str) -> bool:
    # Random bytes almost never decode to printable UTF-8: this is what tells a payload from a hash.
    if len(text) < 4:
        return False
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good >= 0.95 * len(text) and sum(1 for c in text if c.isalnum()) >= 0.5 * len(text.replace(" ", ""))


def _as_text(raw: bytes) -> str | None:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return decoded if _printable(decoded) else None


def _b64(candidate: str) -> str | None:
    s = candidate.strip("=")
    if len(s) < 16 or s.isalpha() and (s.islower() or s.isupper()):
        return None  # a long ordinary word or an all-caps identifier is not base64
    if s.isdigit() or not any(c.isdigit() or c.isupper() for c in s[1:]):
        return None
    alt = "-_" if ("-" in s or "_" in s) else None
    s += "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s, altchars=b"-_" if alt else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(raw)


def _hex(candidate: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,]", "", candidate)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _as_text(bytes.fromhex(digits))
    except ValueError:
        return None


_MORSE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h", "..": "i",
    ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p", "--.-": "q", ".-.": "r",
    "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z",
    "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",", "..--..": "?",
}  # fmt: skip
_MORSE_CHARS = frozenset(".-/ \n\t|")


def _morse(text: str) -> str | None:
    # Morse code: a text made only of dots, dashes and separators, words split by "/" or two spaces.
    s = text.strip()
    if len(s) < 16 or s.count(".") + s.count("-") < len(s) // 2 or not _MORSE_CHARS.issuperset(s):
        return None
    words = re.split(r"\s*[/|]\s*|\s{2,}", s)
    decoded = " ".join("".join(_MORSE.get(code, "") for code in w.split()) for w in words)
    return decoded if _printable(decoded) else None


def _candidates(chunks: list[str]) -> list[tuple[str, str]]:
    # Only whitespace-delimited chunks long enough to hold a payload are searched: ordinary words are
    # short, so on prose the regular expressions below run on little or nothing.
    found: list[tuple[str, str]] = []
    if not chunks or max(map(len, chunks)) < MIN_PAYLOAD:
        return found
    long = " ".join(c for c in chunks if len(c) >= MIN_PAYLOAD)
    searches = [("hex", _HEX_RE), ("base64", _B64_RE)] + ([("url", _URL_RE)] if "%" in long else [])
    for encoding, pattern in searches:
        for m in pattern.finditer(long):
            if len(m.group()) >= MIN_PAYLOAD:
                found.append((encoding, m.group()))
                if len(found) >= MAX_CANDIDATES:
                    return found
    return found


def decode_payloads(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_payloads: int = MAX_PAYLOADS,
    max_chars: int = MAX_PAYLOAD_CHARS,
    words: AbstractSet[str] | None = None,
) -> list[Payload]:
    """Decoded payloads embedded in `text` (and in those payloads, down to `max_depth`), in the order
    found, at most `max_payloads` of them and `max_chars` decoded characters in total. `words`, the
    lower-cased words of `text` if the caller has them, saves hashing them again for the rot13 test."""
    out: list[Payload] = []
    budget = [max_chars]
    _decode_into(text[:MAX_INPUT_CHARS], 1, max_depth, max_payloads, budget, out, words)
    return out


def _decode_into(text: str, depth: int, max_depth: int, max_payloads: int, budget: list[int], out: list[Payload],
                 words: AbstractSet[str] | None = None) -> None:  # fmt: skip
    if depth > max_depth:
        return
    chunks = text.split()
    found: list[Payload] = []
    for encoding, candidate in _candidates(chunks):
        decoded = _b64(candidate) if encoding == "base64" else _hex(candidate) if encoding == "hex" else None
        if encoding == "url":
            decoded = unquote(candidate)
            decoded = decoded if decoded != candidate and _printable(decoded) else None
        if decoded is not None:
            found.append(Payload(encoding, depth, decoded))
    morse = _morse(text)
    if morse is not None:
        found.append(Payload("morse", depth, morse))
    hints = _ROT13_HINTS.intersection(chunks) if words is None else _ROT13_HINTS_LOWER.intersection(words)
    if len(hints) >= 2:
        found.append(Payload("rot13", depth, codecs.encode(text, "rot13")))
    for payload in found:
        if len(out) >= max_payloads or budget[0] <= 0:
            return
        kept = Payload(payload.encoding, depth, payload.text[: budget[0]])
        budget[0] -= len(kept.text)
        out.append(kept)
        # A rot13 or Morse view of the whole text is not searched again.
        if payload.encoding not in ("rot13", "morse"):
            _decode_into(kept.text, depth + 1, max_depth, max_payloads, budget, out)
