"""`POST /v1/feedback`: a score, a label or a comment on an answer, linked to the request's audit event.

Only the principal who made the request (same tenant and same data subject: the user, or the key or
token subject) or an admin of its tenant may leave feedback. The feedback row (comment included)
is personal data of the subject who made the request: an erasure deletes it. The audit log gets an
event that links the feedback to the request's event by index, with the score and label but not
the comment.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import sqlalchemy as sa

from ostiary.audit.event import notice
from ostiary.audit.trail import AuditTrail
from ostiary.errors import Forbidden, InvalidRequest, NotFound
from ostiary.identity.principal import Principal
from ostiary.store.schema import feedback

WAIT_FOR_EVENT = 3.0  # seconds: an event reaches the store within a drain interval of its answer


class Feedback(msgspec.Struct, forbid_unknown_fields=True):
    request_id: str
    score: float | None = None
    label: str | None = None
    comment: str | None = None


def parse(raw: bytes) -> Feedback:
    try:
        fb = msgspec.json.decode(raw or b"{}", type=Feedback)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"Invalid feedback: {e}. Send request_id and at least one of score, label, "
                             "comment.") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e}", code="invalid_json") from None
    if not 1 <= len(fb.request_id) <= 200:
        raise InvalidRequest("request_id must be 1 to 200 characters.", param="request_id")
    if fb.score is None and fb.label is None and fb.comment is None:
        raise InvalidRequest("Give at least one of score, label, comment.", param="score")
    if fb.score is not None and not -1e6 <= fb.score <= 1e6:
        raise InvalidRequest("score must be a number between -1e6 and 1e6.", param="score")
    if fb.label is not None and not 1 <= len(fb.label) <= 100:
        raise InvalidRequest("label must be 1 to 100 characters.", param="label")
    if fb.comment is not None and len(fb.comment) > 10_000:
        raise InvalidRequest("comment must be at most 10,000 characters.", param="comment")
    return fb


Scored = Callable[[list[dict[str, Any]], float], None]


async def leave(trail: AuditTrail, principal: Principal, raw: bytes, scored: Scored | None = None) -> dict[str, Any]:
    """Store feedback on a request; `scored` gets a score with the release arms the request was on."""
    fb = parse(raw)
    row = await _event(trail, fb.request_id)
    subject = trail.keyring.pseudonym(f"{principal.tenant}/{principal.user or principal.subject}")
    admin_of_tenant = principal.role in ("admin", "tenant_admin") and "admin" in principal.scopes
    if row is None or (row.tenant_id != principal.tenant and principal.role != "admin"):
        raise NotFound(f"No request {fb.request_id!r} of yours is on record.", param="request_id",
                       code="request_not_found")
    if row.subject != subject and not admin_of_tenant:
        raise Forbidden("Only the principal who made the request, or an admin of its tenant, may leave "
                        "feedback on it.", code="not_your_request")
    fid = "fb-" + secrets.token_hex(8)
    values = {"id": fid, "request_id": fb.request_id, "tenant_id": row.tenant_id or principal.tenant,
              "principal": f"{principal.kind}:{principal.subject}"[:300], "subject": row.subject or subject,
              "score": fb.score, "label": fb.label, "comment": fb.comment, "created_at": datetime.now(UTC)}
    first = await asyncio.to_thread(_insert, trail, values)
    await trail.record(notice("feedback", id=fid, request_id=fb.request_id, request_seq=row.seq,
                              tenant=row.tenant_id, score=fb.score, label=fb.label))
    if scored is not None and fb.score is not None and first:  # a request's first score only
        arms = orjson.loads(row.body).get("release")
        if arms:
            scored(arms, fb.score)
    return {"id": fid, "object": "feedback", "request_id": fb.request_id}


async def _event(trail: AuditTrail, request_id: str) -> Any:
    deadline = time.monotonic() + WAIT_FOR_EVENT
    while True:
        row = await asyncio.to_thread(trail.log.find, request_id)
        if row is not None or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.1)


def _insert(trail: AuditTrail, values: dict[str, Any]) -> bool:
    """Store the feedback; True if it is the request's first score."""
    with trail.log.store.engine.begin() as conn:
        earlier = conn.execute(sa.select(feedback.c.id).where(feedback.c.request_id == values["request_id"],
                                                              feedback.c.score.is_not(None)).limit(1)).first()
        conn.execute(feedback.insert().values(**values))
    return earlier is None
