"""Evidence bundles: one request's event with what a third party needs to check it offline.

A bundle holds the event exactly as stored (the bytes that were hashed), its index, the latest
signed checkpoint, the inclusion proof of the event in the tree of that checkpoint, and the signer's
verifier key. `check_bundle` needs nothing but the bundle and a verifier key the checker trusts
(obtained out of band, e.g. `ostiary audit key`): it rehashes the event, walks the proof up to the
checkpoint's root and checks the checkpoint's signature.
"""

from __future__ import annotations

import base64
from typing import Any

from ostiary.audit import merkle
from ostiary.audit.checkpoint import NoteError, Verifier, open_note
from ostiary.audit.log import AuditLog

FORMAT = "ostiary-evidence/1"


class BundleError(ValueError):
    pass


def make_bundle(log: AuditLog, request_id: str | None = None, seq: int | None = None) -> dict[str, Any]:
    row = log.find(request_id=request_id, seq=seq)
    if row is None:
        raise BundleError(f"no audit event for {'request ' + repr(request_id) if request_id else f'index {seq}'}")
    checkpoint = log.latest_checkpoint()
    if checkpoint is None or checkpoint.size <= row.seq:
        raise BundleError(f"event {row.seq} is not covered by a signed checkpoint yet; try again in a few seconds")
    proof = log.inclusion(row.seq, checkpoint.size)
    return {"format": FORMAT, "leaf": "RFC 6962 leaf hash of the UTF-8 bytes of `event`",
            "index": row.seq, "event": row.body, "tree_size": checkpoint.size,
            "inclusion_proof": [base64.b64encode(h).decode() for h in proof],
            "checkpoint": checkpoint.note, "verifier_key": log.signer.verifier().key_string()}


def check_bundle(bundle: Any, trusted: list[Verifier]) -> dict[str, Any]:
    """Raise BundleError saying what fails; return a summary when everything holds."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not an evidence bundle (format {FORMAT} expected)")
    try:
        index, size, event = int(bundle["index"]), int(bundle["tree_size"]), str(bundle["event"])
        proof = [base64.b64decode(h, validate=True) for h in bundle["inclusion_proof"]]
        note = str(bundle["checkpoint"])
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"malformed bundle: {e}") from None
    try:
        cp = open_note(note, trusted)
    except NoteError as e:
        raise BundleError(f"the checkpoint is not signed by a trusted key: {e}") from None
    if cp.size != size:
        raise BundleError(f"the bundle says tree size {size} but its checkpoint is for {cp.size}")
    if not event.startswith(f'{{"seq":{index},'):
        raise BundleError(f"the event does not carry index {index}")
    if not merkle.verify_inclusion(merkle.leaf_hash(event.encode()), index, size, proof, cp.root):
        raise BundleError("the inclusion proof does not lead from this event to the checkpoint's root: "
                          "the event or the proof was altered")
    return {"ok": True, "index": index, "tree_size": size, "origin": cp.origin, "root": base64.b64encode(cp.root).decode()}
