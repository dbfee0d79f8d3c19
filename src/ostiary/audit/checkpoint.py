"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, with Ed25519 keys.

A checkpoint commits a log to its Merkle root at a size (c2sp.org/tlog-checkpoint):

    <origin>\\n<size in decimal>\\n<base64 root>\\n[<extension line>\\n ...]

A signed note (c2sp.org/signed-note) is that text, a blank line, then one line per signature:

    — <key name> <base64(4-byte big-endian key ID || 64-byte Ed25519 signature)>\\n

where the key ID is SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4] (0x01 = Ed25519).
Keys are written as in golang.org/x/mod/sumdb/note, so they work with the Go tooling:

    verifier key  <name>+<8 hex key ID>+<base64(0x01 || public key)>
    signer key    PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte private seed)>

Opening a note follows the spec: signatures from unknown (name, key ID) pairs are ignored, a known
key's signature that fails rejects the whole note, and a note no known key verified is rejected.
Every failure raises `NoteError` (a ValueError) with a message saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "NoteError",
    "SignatureError",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "open_signed_note",
    "sign_note",
]

ALG_ED25519 = 0x01  # signature type byte of Ed25519 in c2sp.org/signed-note
HASH_SIZE = 32
MAX_SIGNATURES = 100  # the spec asks verifiers to cap signatures and to accept at least 16
_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")  # ASCII decimal, no leading zeroes
_HEX8_RE = re.compile(r"[0-9a-fA-F]{8}")
_MAX_SIZE = 2**64 - 1  # tree sizes are uint64 across the ecosystem


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed, or whose signatures do not verify."""


class SignatureError(NoteError):
    """A well-formed note that is not validly signed by a known key."""


def _b64decode(text: str, what: str) -> bytes:
    # Strict and canonical: no whitespace, no missing padding, no stray bits, so that one value has
    # exactly one encoding (a signed text must not have look-alike variants).
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str, what: str) -> None:
    """Signed notes are UTF-8 with no ASCII control characters but newline."""
    for ch in text:
        if ch < "\x20" and ch != "\n":
            raise NoteError(f"{what} contains the control character {ch!r}")
        if "\ud800" <= ch <= "\udfff":
            raise NoteError(f"{what} is not valid UTF-8 (lone surrogate)")


def _check_key_name(name: str) -> None:
    if not name:
        raise NoteError("key name is empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} must not contain spaces or '+'")
    _check_text(name, "key name")


def key_id(name: str, public_key: bytes) -> int:
    """The Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Checkpoint:
    """A log's commitment to its Merkle `root` at tree `size` (c2sp.org/tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise NoteError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise NoteError("checkpoint origin must be a single line")
        _check_text(self.origin, "checkpoint origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 0 <= self.size <= _MAX_SIZE:
            raise NoteError(f"checkpoint size must be an integer in [0, 2^64), got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise NoteError(f"checkpoint extension lines must be non-empty single lines, got {ext!r}")
            _check_text(ext, "checkpoint extension line")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the note text, without signatures), strictly."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"checkpoint needs origin, size and root lines, got {len(lines)} line(s)")
        for number, line in enumerate(lines, 1):
            if not line:
                raise NoteError(f"checkpoint line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise NoteError(f"checkpoint size {size_text!r} is not a decimal number without leading zeroes")
        root = _b64decode(root_text, "checkpoint root")
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint root is {len(root)} bytes, expected {HASH_SIZE}")
        return cls(origin, int(size_text), root, tuple(extensions))


class Verifier:
    """An Ed25519 public key with its note key name and key ID."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_key_name(name)
        if len(public_key) != 32:
            raise NoteError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse `<name>+<hex key ID>+<base64(0x01 || public key)>`, checking the key ID."""
        parts = vkey.split("+", 2)  # base64 may itself contain '+'; names and IDs cannot
        if len(parts) != 3:
            raise NoteError("verifier key must be <name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        key = _parse_typed_key(id_hex, key_b64, "verifier key")
        verifier = cls(name, key)
        if verifier.key_id != int(id_hex, 16):
            raise NoteError(f"verifier key ID {id_hex} does not match its name and public key")
        return verifier

    def key_string(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"Verifier({self.key_string()!r})"


class Signer:
    """An Ed25519 private key with its note key name; keep `key_string()` secret."""

    __slots__ = ("_key", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        self._verifier = Verifier(name, private_key.public_key().public_bytes_raw())  # checks the name

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """Parse `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`, checking the key ID."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("signer key must start with PRIVATE+KEY+")
        parts = skey[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("signer key must be PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        seed = _parse_typed_key(id_hex, key_b64, "signer key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        # The ID names the public key, so it can be checked only once that is derived.
        if signer.key_id != int(id_hex, 16):
            raise NoteError(f"signer key ID {id_hex} does not match its name and key")
        return signer

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    def key_string(self) -> str:
        seed = self._key.private_bytes_raw()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + seed)}"

    def verifier(self) -> Verifier:
        return self._verifier

    def sign_bytes(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of `message`."""
        return self._key.sign(message)

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note of `checkpoint`: its body, a blank line and this key's signature line."""
        return sign_note(checkpoint.body(), [self])

    def __repr__(self) -> str:  # never show the private key
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


def _parse_typed_key(id_hex: str, key_b64: str, what: str) -> bytes:
    if not _HEX8_RE.fullmatch(id_hex):
        raise NoteError(f"{what} ID must be 8 hex digits, got {id_hex!r}")
    raw = _b64decode(key_b64, what)
    if not raw or raw[0] != ALG_ED25519:
        raise NoteError(f"{what} is not an Ed25519 key (type byte 0x01)")
    if len(raw) != 33:
        raise NoteError(f"{what} must hold 32 key bytes, got {len(raw) - 1}")
    return raw[1:]


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign any note text (ending in newline) with each signer, in order."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text(text, "note text")
    if not signers:
        raise NoteError("a note needs at least one signer")
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        sig = signer.key_id.to_bytes(4, "big") + signer.sign_bytes(message)
        lines.append(f"{_SIG_PREFIX}{signer.name} {_b64(sig)}\n")
    return text + "\n" + "".join(lines)


def open_signed_note(note: str | bytes, verifiers: Iterable[Verifier]) -> tuple[str, tuple[Verifier, ...]]:
    """Verify a signed note; return its text and the known keys whose signatures verified.

    Raises NoteError if the note is malformed, SignatureError if a known key's signature fails or no
    known key signed it.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_text(note, "note")
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other != v:
            raise NoteError(f"two verifier keys share name and key ID {v.name}+{v.key_id:08x}")

    # The text ends at the last blank line: it may contain blank lines itself, signatures cannot.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("note must end with signature lines, each ending in newline")
    sig_lines = sig_block[:-1].split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(sig_lines)} signatures, more than {MAX_SIGNATURES}")

    message = text.encode("utf-8")
    verified: dict[tuple[str, int], Verifier] = {}
    for number, line in enumerate(sig_lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, sig_b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not sig_b64:
            raise NoteError(f"signature line {number} must be '\u2014 <key name> <base64 signature>'")
        _check_key_name(name)
        raw = _b64decode(sig_b64, f"signature on line {number}")
        if len(raw) < 5:
            raise NoteError(f"signature on line {number} is too short to hold a key ID and a signature")
        kid = int.from_bytes(raw[:4], "big")
        verifier = known.get((name, kid))
        if verifier is None:
            continue  # unknown key (maybe a witness or a rotated key): ignored, as the spec requires
        if (name, kid) in verified:
            continue  # a repeated signature by one key counts once
        if not verifier.verify(message, raw[4:]):
            raise SignatureError(f"signature by {name}+{kid:08x} does not verify: the note was altered")
        verified[(name, kid)] = verifier
    if not verified:
        raise SignatureError("note is not signed by any known key")
    return text, tuple(verified.values())


def open_note(note: str | bytes, verifiers: Iterable[Verifier], *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body.

    With `origin`, also require the checkpoint to be for that log (a valid signature by a known key
    over another log's checkpoint is still the wrong checkpoint).
    """
    text, _ = open_signed_note(note, verifiers)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
