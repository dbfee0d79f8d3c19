"""Personal content in audit events, encrypted per data subject so that erasure is deleting a key.

Each data subject (a user, or the key/token subject when a call names no user) gets one data key
per calendar month: AES-256-GCM, wrapped by a master key. An event's personal part (prompt, answer,
user id, source address) is encrypted under the key of its subject and month; the Merkle leaf
covers the ciphertext, so destroying keys never breaks the log:

- erasure deletes every key of the subject, and its content reads as `ERASED`;
- retention deletes the keys of months past the retention time, which shreds old content of every
  subject at once while the envelopes (who, which model, tokens, cost, verdicts) stay.

Subjects appear in the store only as a pseudonym (HMAC of the subject under a key derived from the
master key), so the log can find a subject's events for an erasure or an access export without
keeping the identifier in clear.

The master key comes from a file or an environment variable (32 random bytes, hex or base64);
`KeyWrapper` is the interface a KMS adapter implements instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ERASED = "[erased]"
"""What a field reads as once its key is gone (erasure or retention)."""


class KeyWrapper(Protocol):
    """Wraps data keys: the local master key below, or a KMS."""

    def wrap(self, key: bytes, label: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, label: bytes) -> bytes: ...

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte secret for `purpose` (the pseudonym key), stable for this master key."""
        ...


class MasterKey:
    """A 32-byte master key held in memory; wraps data keys with AES-GCM bound to their label."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the audit master key must be 32 bytes (64 hex digits or 44 base64 characters)")
        self._aead = AESGCM(key)
        self._key = key

    @classmethod
    def parse(cls, text: str) -> MasterKey:
        text = text.strip()
        try:
            raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise ValueError("the audit master key is neither 64 hex digits nor base64") from None
        return cls(raw)

    @classmethod
    def load(cls, file: Path | None, env: str | None, default_file: Path) -> MasterKey:
        """From the environment variable, else the file, else `default_file`, created on first use
        (the embedded default; replicas sharing a database must share the key: set `master_key_file`)."""
        if env:
            value = os.environ.get(env)
            if not value:
                raise ValueError(f"audit.master_key_env names {env}, which is not set")
            return cls.parse(value)
        path = file or default_file
        if file is None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        try:
            return cls.parse(path.read_text())
        except OSError as e:
            raise ValueError(f"cannot read the audit master key file {path}: {e.strerror}") from None

    def wrap(self, key: bytes, label: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, label)

    def unwrap(self, wrapped: bytes, label: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:12], wrapped[12:], label)

    def derive(self, purpose: bytes) -> bytes:
        return hmac.new(self._key, b"ostiary-audit:" + purpose, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class DataKey:
    kid: str  # the key's id: pseudonym, period and a random suffix (replicas may each create one)
    subject: str  # the pseudonym
    period: str  # "2026-11"
    key: bytes
    aead: AESGCM = field(init=False, repr=False, compare=False)  # built once: events reuse it

    def __post_init__(self) -> None:
        object.__setattr__(self, "aead", AESGCM(self.key))


class Keyring:
    """Data keys by subject and month: created on first use, cached, looked up for reading.

    `fresh` collects keys created since the last `take_fresh`, which the writer persists (in the
    spool, then the store) before anything encrypted under them can be acknowledged.
    """

    def __init__(self, wrapper: KeyWrapper) -> None:
        self.wrapper = wrapper
        self._pseudonym_key = wrapper.derive(b"subject-pseudonym")
        self._pseudonyms: dict[str, str] = {}
        self._current: dict[tuple[str, str], DataKey] = {}
        self._known: dict[str, bytes] = {}
        self._fresh: list[DataKey] = []
        self._lock = threading.Lock()

    def pseudonym(self, subject: str) -> str:
        known = self._pseudonyms.get(subject)
        if known is None:
            if len(self._pseudonyms) >= 100_000:  # bounded: a cache, not a directory of subjects
                self._pseudonyms.clear()
            known = self._pseudonyms[subject] = hmac.new(self._pseudonym_key, subject.encode(),
                                                         hashlib.sha256).hexdigest()[:32]
        return known

    def key_for(self, pseudonym: str, period: str) -> DataKey:
        with self._lock:
            key = self._current.get((pseudonym, period))
            if key is None:
                key = DataKey(f"{pseudonym}.{period}.{secrets.token_hex(4)}", pseudonym, period, os.urandom(32))
                self._current[(pseudonym, period)] = key
                self._known[key.kid] = key.key
                self._fresh.append(key)
            return key

    def take_fresh(self) -> list[DataKey]:
        with self._lock:
            fresh, self._fresh = self._fresh, []
            return fresh

    def wrapped(self, key: DataKey) -> bytes:
        return self.wrapper.wrap(key.key, key.kid.encode())

    def learn(self, kid: str, wrapped: bytes) -> bytes | None:
        """Unwrap a stored key (None if it does not open under this master key)."""
        try:
            key = self.wrapper.unwrap(wrapped, kid.encode())
        except InvalidTag:
            return None
        with self._lock:
            self._known[kid] = key
        return key

    def forget(self, kids: set[str] | None = None) -> None:
        """Drop cached keys (all, or some) after an erasure or a retention run deleted them."""
        with self._lock:
            if kids is None:
                self._current.clear()
                self._known.clear()
                return
            for kid in kids:
                self._known.pop(kid, None)
            self._current = {k: v for k, v in self._current.items() if v.kid not in kids}

    def known(self, kid: str) -> bytes | None:
        return self._known.get(kid)


def seal(key: DataKey, content: dict[str, Any], binding: bytes) -> dict[str, str]:
    """Encrypt `content` (JSON) under `key`; `binding` (the event's uid) is authenticated with it so
    that a ciphertext cannot be moved to another event."""
    nonce = os.urandom(12)
    ct = key.aead.encrypt(nonce, orjson.dumps(content), binding)
    return {"kid": key.kid, "ct": base64.b64encode(nonce + ct).decode()}


def unseal(sealed: dict[str, str], key: bytes | None, binding: bytes) -> dict[str, Any] | None:
    """The content, or None when the key is gone (erased or past retention)."""
    if key is None:
        return None
    raw = base64.b64decode(sealed["ct"])
    return orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], binding))  # type: ignore[no-any-return]
