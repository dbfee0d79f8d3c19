"""Admin endpoints for the audit trail and data subjects.

Readers (admin, tenant_admin, auditor) read events (decrypted, unless erased), proofs, evidence
bundles and the latest checkpoint; an event of another tenant answers 404 like a missing one.
Verification runs are for admins. Managers (admin, tenant_admin) erase, export and hold the data
subjects of their tenant: a subject is TENANT/USER, and a tenant admin may name its own tenant only.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

import msgspec

from ostiary.admin.access import own_tenant, require_admin
from ostiary.admin.routing import READERS, Param, Request, Route
from ostiary.audit.evidence import make_bundle
from ostiary.audit.subjects import Subjects, tenant_of
from ostiary.audit.verify import trusted, verify_and_record
from ostiary.errors import GatewayError, InvalidRequest, NotFound

if TYPE_CHECKING:
    from ostiary.admin.api import Services


class Hold(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


def _subjects(svc: Services) -> Subjects:
    if svc.subjects is None:
        raise GatewayError("The audit trail is disabled on this gateway (audit.enabled: false).", status=409,
                           type="invalid_request_error", code="audit_disabled")
    return svc.subjects


def _visible(req: Request, row: Any, what: str) -> Any:
    if row is None or (req.within is not None and row.tenant_id != req.within):
        raise NotFound(f"No audit event for {what}.", code="event_not_found")
    return row


def _seq(req: Request) -> tuple[str | None, int | None]:
    rid, seq = req.query.get("request_id"), req.query.get("seq")
    if (rid is None) == (seq is None):
        raise InvalidRequest("Give either request_id or seq.", param="request_id")
    if seq is not None and not seq.isdigit():
        raise InvalidRequest("seq must be a non-negative integer.", param="seq")
    return rid, int(seq) if seq is not None else None


async def get_event(svc: Services, req: Request) -> tuple[int, Any]:
    subjects = _subjects(svc)
    rid = req.params["request_id"]
    row = _visible(req, await asyncio.to_thread(subjects.log.find, rid), f"request {rid!r}")
    return 200, await asyncio.to_thread(subjects.open, row)


async def get_bundle(svc: Services, req: Request) -> tuple[int, Any]:
    subjects = _subjects(svc)
    rid, seq = _seq(req)
    _visible(req, await asyncio.to_thread(subjects.log.find, rid, seq), rid or f"index {seq}")
    return 200, await asyncio.to_thread(make_bundle, subjects.log, rid, seq)


async def get_consistency(svc: Services, req: Request) -> tuple[int, Any]:
    log = _subjects(svc).log
    try:
        old, new = int(req.query.get("old", "")), int(req.query.get("new", ""))
    except ValueError:
        raise InvalidRequest("old and new must be integers (tree sizes).", param="old") from None
    size = await asyncio.to_thread(log.size)
    if not 0 <= old <= new <= size:
        raise InvalidRequest(f"Sizes must satisfy 0 <= old <= new <= {size} (the log's size).", param="new")
    proof = await asyncio.to_thread(log.consistency, old, new)
    return 200, {"old": old, "new": new, "proof": [base64.b64encode(h).decode() for h in proof]}


async def get_checkpoint(svc: Services, req: Request) -> tuple[int, Any]:
    log = _subjects(svc).log
    row = await asyncio.to_thread(log.latest_checkpoint)
    if row is None:
        raise NotFound("No checkpoint has been signed yet.", code="checkpoint_not_found")
    return 200, {"size": row.size, "root": base64.b64encode(bytes.fromhex(row.root)).decode(), "note": row.note,
                 "verifier_key": log.signer.verifier().key_string()}


async def post_verify(svc: Services, req: Request) -> tuple[int, Any]:
    require_admin(req, "run a verification of the whole log")
    subjects = _subjects(svc)
    log = subjects.log
    keys = trusted(log, list(svc.verifier_keys))
    report = await asyncio.to_thread(verify_and_record, log, keys, log.witness_dir, by=req.actor.subject)
    return 200, report.public()


def _subject(req: Request) -> str:
    subject = req.params["subject"]
    own_tenant(req, tenant_of(subject), param="subject")
    return subject


async def erase(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, await asyncio.to_thread(_subjects(svc).erase, _subject(req), req.actor.subject)


async def export(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, await asyncio.to_thread(_subjects(svc).export, _subject(req))


async def hold(svc: Services, req: Request) -> tuple[int, Any]:
    body = req.decode(Hold)
    return 200, await asyncio.to_thread(_subjects(svc).hold, _subject(req), body.reason, req.actor.subject)


async def release(svc: Services, req: Request) -> tuple[int, Any]:
    return 200, await asyncio.to_thread(_subjects(svc).release, _subject(req), req.actor.subject)


_BY = (Param("request_id", "the request's x-request-id"), Param("seq", "or the event's index", {"type": "integer"}))
ROUTES = (
    Route("GET", "/audit/events/{request_id}", get_event, "One request's audit event, personal content decrypted "
          "(or \"[erased]\")", roles=READERS, returns="the event"),
    Route("GET", "/audit/bundle", get_bundle, "Evidence bundle: event, inclusion proof, signed checkpoint",
          roles=READERS, query=_BY, returns="the bundle (check offline with `ostiary audit check-bundle`)"),
    Route("GET", "/audit/consistency", get_consistency, "Consistency proof between two tree sizes", roles=READERS,
          query=(Param("old", "older size", {"type": "integer"}), Param("new", "newer size", {"type": "integer"})),
          returns="base64 hashes (RFC 6962)"),
    Route("GET", "/audit/checkpoint", get_checkpoint, "The latest signed checkpoint", roles=READERS,
          returns="size, root, the signed note and the signer's verifier key"),
    Route("POST", "/audit/verify", post_verify, "Recompute the log and check every checkpoint (admin)",
          roles=READERS, returns="ok, size, checkpoints, first_bad_index, problems"),
    Route("POST", "/subjects/erase/{subject*}", erase, "Erase a data subject (TENANT/USER) everywhere",
          returns="an erasure receipt: keys destroyed, events, reviews and feedback removed", errors=(400, 401, 403, 409)),
    Route("GET", "/subjects/export/{subject*}", export, "Everything kept about a data subject (access request)",
          returns="events (decrypted), reviews, feedback"),
    Route("POST", "/subjects/hold/{subject*}", hold, "Place a legal hold on a subject (\"*\": everything)",
          body=Hold, returns="held", errors=(400, 401, 403, 409)),
    Route("DELETE", "/subjects/hold/{subject*}", release, "Lift a legal hold", returns="held: false"),
)
