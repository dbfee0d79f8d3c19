"""Signed checkpoints: the Go sumdb/note reference key and note reproduced byte for byte, the C2SP
checkpoint example parsed, sign/open round trips, every kind of tampering refused, unknown keys
ignored, and malformed notes, bodies and keys rejected with a message."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ostiary.audit.checkpoint import (
    Checkpoint,
    NoteError,
    SignatureError,
    Signer,
    Verifier,
    key_id,
    open_note,
    open_signed_note,
    sign_note,
)
from ostiary.audit.merkle import EMPTY_ROOT, leaf_hash

# The example of golang.org/x/mod/sumdb/note (note.go package documentation): a signer key, its
# verifier key and the note it signs. Ed25519 is deterministic, so the signature must match exactly.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n"
    + "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# The example body of c2sp.org/tlog-checkpoint.
C2SP_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

ORIGIN = "audit.example/ostiary"
SIGNER = Signer.generate(ORIGIN)
VERIFIER = SIGNER.verifier()
CHECKPOINT = Checkpoint(ORIGIN, 12345, leaf_hash(b"root"))


def replace_line(note: str, index: int, new: str) -> str:
    lines = note.split("\n")
    lines[index] = new
    return "\n".join(lines)


# ---------------------------------------------------------------- reference vectors


def test_go_sumdb_note_vector() -> None:
    signer = Signer.from_key_string(GO_SKEY)
    verifier = Verifier.from_key_string(GO_VKEY)
    assert signer.name == "PeterNeumann" and signer.key_id == 0xC74F20A3
    assert signer.verifier() == verifier
    assert signer.key_string() == GO_SKEY and verifier.key_string() == GO_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    text, verified = open_signed_note(GO_NOTE, [verifier])
    assert text == GO_TEXT and verified == (verifier,)
    assert open_signed_note(GO_NOTE.encode("utf-8"), [verifier])[0] == GO_TEXT


def test_key_id_is_the_spec_formula() -> None:
    pub = VERIFIER.public_key
    expected = hashlib.sha256(ORIGIN.encode() + b"\n" + b"\x01" + pub).digest()[:4]
    assert key_id(ORIGIN, pub) == int.from_bytes(expected, "big") == VERIFIER.key_id


def test_c2sp_checkpoint_example_parses() -> None:
    cp = Checkpoint.parse(C2SP_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == C2SP_BODY


# ---------------------------------------------------------------- round trips


def test_sign_and_open_round_trip() -> None:
    note = SIGNER.sign(CHECKPOINT)
    body, sigs = note.split("\n\n")
    assert body + "\n" == CHECKPOINT.body()
    assert sigs.startswith(f"\u2014 {ORIGIN} ")
    raw = base64.b64decode(sigs.split(" ")[2])
    assert len(raw) == 4 + 64 and int.from_bytes(raw[:4], "big") == SIGNER.key_id
    assert open_note(note, [VERIFIER]) == CHECKPOINT
    assert open_note(note, [VERIFIER], origin=ORIGIN) == CHECKPOINT


def test_round_trip_with_extensions_and_empty_tree() -> None:
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("timestamp 1700000000", "config v42"))
    assert cp.body().endswith("timestamp 1700000000\nconfig v42\n")
    assert Checkpoint.parse(cp.body()) == cp
    assert open_note(SIGNER.sign(cp), [VERIFIER]) == cp


def test_key_strings_round_trip() -> None:
    skey = SIGNER.key_string()
    assert skey.startswith(f"PRIVATE+KEY+{ORIGIN}+{SIGNER.key_id:08x}+")
    restored = Signer.from_key_string(skey)
    assert restored.verifier() == VERIFIER
    vkey = VERIFIER.key_string()
    assert vkey.startswith(f"{ORIGIN}+{VERIFIER.key_id:08x}+")
    assert Verifier.from_key_string(vkey) == VERIFIER
    assert open_note(restored.sign(CHECKPOINT), [Verifier.from_key_string(vkey)]) == CHECKPOINT
    assert skey not in repr(SIGNER)


# ---------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (0, "audit.example/other"),  # origin
        (1, "12346"),  # size
        (2, base64.b64encode(leaf_hash(b"other")).decode()),  # root
    ],
)
def test_tampered_body_is_detected(line: int, value: str) -> None:
    note = replace_line(SIGNER.sign(CHECKPOINT), line, value)
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(note, [VERIFIER])


def test_tampered_extensions_are_detected() -> None:
    cp = Checkpoint(ORIGIN, 7, leaf_hash(b"r"), ("ext one",))
    note = SIGNER.sign(cp)
    for forged in (
        replace_line(note, 3, "ext two"),  # changed
        note.replace("ext one\n", "ext one\nadded\n"),  # added
        note.replace("ext one\n", ""),  # removed
    ):
        with pytest.raises(SignatureError, match="does not verify"):
            open_note(forged, [VERIFIER])
    # A line added to a note signed without extensions.
    with pytest.raises(SignatureError):
        open_note(SIGNER.sign(CHECKPOINT).replace("\n\n", "\nextra\n\n"), [VERIFIER])


def test_signature_by_another_key_with_the_same_name() -> None:
    impostor = Signer.generate(ORIGIN)
    assert impostor.key_id != SIGNER.key_id  # (a 1 in 2^32 collision would be caught below anyway)
    with pytest.raises(SignatureError, match="not signed by any known key"):
        open_note(impostor.sign(CHECKPOINT), [VERIFIER])
    # The impostor claims the real key's ID: the signature itself fails.
    forged_sig = SIGNER.key_id.to_bytes(4, "big") + impostor.sign_bytes(CHECKPOINT.body().encode())
    forged = CHECKPOINT.body() + f"\n\u2014 {ORIGIN} {base64.b64encode(forged_sig).decode()}\n"
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(forged, [VERIFIER])


def test_signature_moved_to_another_checkpoint() -> None:
    other = Checkpoint(ORIGIN, 12346, CHECKPOINT.root)
    sig_line = SIGNER.sign(CHECKPOINT).split("\n\n")[1]
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(other.body() + "\n" + sig_line, [VERIFIER])


def test_unknown_signatures_are_ignored() -> None:
    witness = Signer.generate("witness.example/w1")
    same_name = Signer.generate(ORIGIN)
    note = sign_note(CHECKPOINT.body(), [witness, SIGNER, same_name])
    assert open_note(note, [VERIFIER]) == CHECKPOINT
    text, verified = open_signed_note(note, [VERIFIER, witness.verifier()])
    assert text == CHECKPOINT.body()
    assert {v.name for v in verified} == {ORIGIN, "witness.example/w1"}
    with pytest.raises(SignatureError, match="not signed by any known key"):
        open_note(sign_note(CHECKPOINT.body(), [witness]), [VERIFIER])
    with pytest.raises(SignatureError, match="not signed by any known key"):
        open_note(SIGNER.sign(CHECKPOINT), [])


def test_a_bad_known_signature_rejects_the_note_even_with_a_good_one() -> None:
    witness = Signer.generate("witness.example/w1")
    note = sign_note(CHECKPOINT.body(), [SIGNER, witness])
    bad_sig = witness.key_id.to_bytes(4, "big") + witness.sign_bytes(b"something else\n")
    lines = note.split("\n")
    lines[-2] = f"\u2014 witness.example/w1 {base64.b64encode(bad_sig).decode()}"
    with pytest.raises(SignatureError, match="witness.example/w1"):
        open_signed_note("\n".join(lines), [VERIFIER, witness.verifier()])


def test_duplicate_signature_counts_once() -> None:
    note = SIGNER.sign(CHECKPOINT)
    sig_line = note.split("\n\n")[1]
    _, verified = open_signed_note(note + sig_line, [VERIFIER, VERIFIER])
    assert verified == (VERIFIER,)


def test_open_note_checks_the_expected_origin() -> None:
    with pytest.raises(NoteError, match="expected 'audit.example/elsewhere'"):
        open_note(SIGNER.sign(CHECKPOINT), [VERIFIER], origin="audit.example/elsewhere")


# ---------------------------------------------------------------- malformed notes

GOOD = SIGNER.sign(CHECKPOINT)
GOOD_SIG = GOOD.split("\n\n")[1].split(" ")[2].strip()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("", "no blank line"),
        (CHECKPOINT.body(), "no blank line"),
        (CHECKPOINT.body() + "\n", "must end with signature lines"),
        (GOOD.rstrip("\n"), "must end with signature lines"),
        (GOOD.replace("\u2014 ", "- "), "does not start with an em dash"),
        (GOOD.replace("\u2014 ", "\u2014"), "does not start with an em dash"),
        (GOOD.replace(f"{ORIGIN} ", ORIGIN), "must be '\u2014 <key name> <base64 signature>'"),
        (GOOD.replace(GOOD_SIG, "!!!!"), "not valid base64"),
        (GOOD.replace(GOOD_SIG, GOOD_SIG.rstrip("=")), "not valid base64"),
        (GOOD.replace(GOOD_SIG, "AAAAAA=="), "too short"),
        (GOOD.replace(f"\u2014 {ORIGIN}", "\u2014 bad+name"), "must not contain spaces or '\\+'"),
        (GOOD.replace("\n", "\r\n"), "control character"),
        (GOOD.replace("12345", "123\t45"), "control character"),
        (GOOD + "\n", "signature line"),
        (GOOD + GOOD.split("\n\n")[1] * 100, "more than 100"),
    ],
)
def test_malformed_notes_are_rejected(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, [VERIFIER])


def test_invalid_utf8_note_is_rejected() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_note(GOOD.encode() + b"\xff\n", [VERIFIER])


def test_signed_body_that_is_not_a_checkpoint_is_rejected() -> None:
    with pytest.raises(NoteError, match="needs origin, size and root"):
        open_note(sign_note("just text\n", [SIGNER]), [VERIFIER])


def test_sign_note_arguments() -> None:
    with pytest.raises(NoteError, match="end with a newline"):
        sign_note("no newline", [SIGNER])
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("text\n", [])
    with pytest.raises(NoteError, match="control character"):
        sign_note("a\x00b\n", [SIGNER])


# ---------------------------------------------------------------- malformed checkpoint bodies

ROOT_B64 = base64.b64encode(CHECKPOINT.root).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n5\n{ROOT_B64}", "end with a newline"),
        (f"{ORIGIN}\n5\n", "got 2 line"),
        (f"\n5\n{ROOT_B64}\n", "line 1 is empty"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\n\n", "line 4 is empty"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\next\n\n", "line 5 is empty"),
        (f"{ORIGIN}\n05\n{ROOT_B64}\n", "without leading zeroes"),
        (f"{ORIGIN}\n-5\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n+5\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n 5\n{ROOT_B64}\n", "not a decimal number"),
        (f"{ORIGIN}\n\uff15\n{ROOT_B64}\n", "not a decimal number"),  # fullwidth digit five
        (f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n", r"\[0, 2\^64\)"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n", "not valid base64"),
        (f"{ORIGIN}\n5\n{base64.b64encode(b'x' * 31).decode()}\n", "31 bytes, expected 32"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-2]}B=\n", "not canonical base64"),
        (f"{ORIGIN}\x07\n5\n{ROOT_B64}\n", "control character"),
    ],
)
def test_malformed_checkpoint_bodies(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text)


def test_checkpoint_constructor_validates() -> None:
    root = CHECKPOINT.root
    with pytest.raises(NoteError, match="origin is empty"):
        Checkpoint("", 1, root)
    with pytest.raises(NoteError, match="single line"):
        Checkpoint("a\nb", 1, root)
    with pytest.raises(NoteError, match="size must be an integer"):
        Checkpoint(ORIGIN, -1, root)
    with pytest.raises(NoteError, match="size must be an integer"):
        Checkpoint(ORIGIN, True, root)
    with pytest.raises(NoteError, match="root must be 32 bytes"):
        Checkpoint(ORIGIN, 1, root[:31])
    with pytest.raises(NoteError, match="extension lines must be non-empty"):
        Checkpoint(ORIGIN, 1, root, ("",))
    with pytest.raises(NoteError, match="extension lines must be non-empty"):
        Checkpoint(ORIGIN, 1, root, ("a\nb",))
    assert issubclass(NoteError, ValueError)


# ---------------------------------------------------------------- malformed keys


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3", "must be <name>"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann2+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type byte 0x01"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10Q=", "32 key bytes"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "spaces or '\\+'"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name is empty"),
    ],
)
def test_malformed_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Verifier.from_key_string(vkey)


@pytest.mark.parametrize(
    ("skey", "message"),
    [
        (GO_VKEY, "must start with PRIVATE\\+KEY\\+"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", "must be PRIVATE\\+KEY\\+<name>"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "does not match"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "type byte 0x01"),
    ],
)
def test_malformed_signer_keys(skey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Signer.from_key_string(skey)


def test_signer_name_is_validated() -> None:
    with pytest.raises(NoteError, match="spaces or '\\+'"):
        Signer.generate("two words")
    with pytest.raises(NoteError, match="key name is empty"):
        Signer.generate("")
