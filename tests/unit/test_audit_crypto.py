"""Per-subject encryption of audit content: sealed content opens only with its key and its event,
keys wrap under the master key and its label, erased keys leave content unreadable."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from ostiary.audit.crypto import Keyring, MasterKey, seal, unseal


def _ring() -> Keyring:
    return Keyring(MasterKey(bytes(range(32))))


def test_sealed_content_opens_with_its_key_for_its_event_only() -> None:
    ring = _ring()
    key = ring.key_for(ring.pseudonym("acme/alice"), "2026-11")
    sealed = seal(key, {"prompt": "my IBAN is DE89 3704 0044 0532 0130 00"}, b"uid-1")
    assert "DE89" not in sealed["ct"]
    assert unseal(sealed, key.key, b"uid-1") == {"prompt": "my IBAN is DE89 3704 0044 0532 0130 00"}
    with pytest.raises(InvalidTag):  # moved to another event
        unseal(sealed, key.key, b"uid-2")
    assert unseal(sealed, None, b"uid-1") is None  # the key was erased


def test_keys_are_per_subject_and_month_and_wrapped_under_their_label() -> None:
    ring = _ring()
    alice, bob = ring.pseudonym("acme/alice"), ring.pseudonym("acme/bob")
    assert alice != bob and alice == ring.pseudonym("acme/alice") and len(alice) == 32
    assert ring.pseudonym("other/alice") != alice  # two tenants' alice are two people
    k1, k2 = ring.key_for(alice, "2026-11"), ring.key_for(alice, "2026-12")
    assert k1.key != k2.key and ring.key_for(alice, "2026-11") is k1
    assert {k.kid for k in ring.take_fresh()} == {k1.kid, k2.kid} and ring.take_fresh() == []
    wrapped = ring.wrapped(k1)
    fresh = Keyring(MasterKey(bytes(range(32))))
    assert fresh.learn(k1.kid, wrapped) == k1.key
    assert fresh.learn(k2.kid, wrapped) is None  # a wrapped key cannot be passed off under another id
    assert Keyring(MasterKey(bytes(32))).learn(k1.kid, wrapped) is None  # another master key


def test_forgetting_keys_makes_the_next_event_use_a_new_one() -> None:
    ring = _ring()
    alice = ring.pseudonym("acme/alice")
    k1 = ring.key_for(alice, "2026-11")
    ring.forget({k1.kid})
    assert ring.known(k1.kid) is None
    assert ring.key_for(alice, "2026-11").kid != k1.kid


@pytest.mark.parametrize("text", ["", "abc", "zz" * 32, "AAAA"])
def test_a_bad_master_key_is_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="master key"):
        MasterKey.parse(text)


def test_master_key_in_hex_or_base64() -> None:
    assert MasterKey.parse("00" * 32).derive(b"x") == MasterKey.parse("A" * 43 + "=").derive(b"x")
