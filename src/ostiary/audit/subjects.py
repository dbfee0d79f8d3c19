"""Data subjects (GDPR): erasure, access export, retention and legal holds, and reading events back.

- `erase(subject)` deletes every data key of the subject (its content in the log becomes `ERASED`
  while the log still verifies: leaves cover ciphertext), deletes its guardrail reviews and its
  feedback, and appends an erasure receipt that names no one (a receipt id and counts). A subject
  under a legal hold is not erased (GDPR art. 17(3)(e)): the hold must be lifted first.
- `export(subject)` decrypts everything the gateway keeps about the subject.
- `retain(days)` shreds content older than the retention time by deleting whole months of data keys,
  except for subjects under a hold (or everything, under the hold "*"), and appends a receipt.

Replicas cache data keys; every change here bumps the store's generation, on which each replica
drops its cache (gateway.py), so new events get new keys within a refresh interval. Content a
replica wrote in that interval under a key just erased cannot be read by anyone: it is erased too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from ostiary.audit.crypto import ERASED, Keyring, unseal
from ostiary.audit.event import notice
from ostiary.audit.log import AuditLog, encode_event
from ostiary.store import bump_generation
from ostiary.store.schema import audit_holds, audit_keys, feedback, reviews

ALL = "*"


class SubjectError(ValueError):
    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True, slots=True)
class Subjects:
    log: AuditLog
    keyring: Keyring

    @property
    def engine(self) -> sa.Engine:
        return self.log.store.engine

    # -- reading -------------------------------------------------------------------------------

    def open(self, row: Any) -> dict[str, Any]:
        """An event as stored, with its personal part decrypted (or `ERASED`)."""
        event: dict[str, Any] = orjson.loads(row.body)
        sealed = event.pop("content", None)
        if sealed is not None:
            content = unseal(sealed, self._key(sealed["kid"]), event["uid"].encode())
            event["content"] = content if content is not None else ERASED
        return event

    def _key(self, kid: str) -> bytes | None:
        key = self.keyring.known(kid)
        if key is not None:
            return key
        with self.engine.connect() as conn:
            wrapped = conn.execute(sa.select(audit_keys.c.wrapped).where(audit_keys.c.kid == kid)).scalar()
        return self.keyring.learn(kid, wrapped) if wrapped is not None else None

    # -- erasure and access ----------------------------------------------------------------------

    def erase(self, subject: str, actor: str) -> dict[str, Any]:
        pseudonym = self.keyring.pseudonym(_check(subject))
        with self.engine.begin() as conn:
            held = conn.execute(sa.select(audit_holds.c.subject).where(
                audit_holds.c.subject.in_([pseudonym, ALL]))).first()
            if held is not None:
                raise SubjectError("this subject is under a legal hold; lift the hold before erasing",
                                   conflict=True)
            kids = set(conn.execute(sa.select(audit_keys.c.kid).where(audit_keys.c.subject == pseudonym)).scalars())
            conn.execute(audit_keys.delete().where(audit_keys.c.subject == pseudonym))
            n_reviews = conn.execute(reviews.delete().where(_reviews_of(subject))).rowcount
            n_feedback = conn.execute(feedback.delete().where(feedback.c.subject == pseudonym)).rowcount
            bump_generation(conn)
        self.keyring.forget(kids)
        events = self.log.count_of_subject(pseudonym)
        receipt = notice("erasure", by=actor, keys_destroyed=len(kids), events=events, reviews=n_reviews,
                         feedback=n_feedback)
        self.log.append([encode_event(receipt.envelope)], force_checkpoint=True)
        return {"receipt": receipt.envelope["uid"], "keys_destroyed": len(kids), "events": events,
                "reviews": n_reviews, "feedback": n_feedback}

    def export(self, subject: str) -> dict[str, Any]:
        pseudonym = self.keyring.pseudonym(_check(subject))
        events = [self.open(r) for r in self.log.of_subject(pseudonym)]
        with self.engine.connect() as conn:
            held_reviews = conn.execute(sa.select(reviews).where(_reviews_of(subject))).mappings()
            review_rows = [_plain(dict(r)) for r in held_reviews]
            notes = [_plain(dict(r)) for r in conn.execute(
                sa.select(feedback).where(feedback.c.subject == pseudonym).order_by(feedback.c.created_at)).mappings()]
        return {"subject": subject, "exported_at": datetime.now(UTC).isoformat(), "events": events,
                "reviews": review_rows, "feedback": notes}

    # -- retention and holds ---------------------------------------------------------------------

    def retain(self, content_days: int, actor: str = "retention", now: datetime | None = None) -> dict[str, Any]:
        """Delete the data keys of every month that ended more than `content_days` ago."""
        now = now or datetime.now(UTC)
        cutoff = _month(now - timedelta(days=content_days))  # months before this one have ended in time
        with self.engine.begin() as conn:
            holds = set(conn.execute(sa.select(audit_holds.c.subject)).scalars())
            if ALL in holds:
                return {"keys_destroyed": 0, "held": "everything", "before": cutoff}
            due = audit_keys.c.period < cutoff
            if holds:
                due = sa.and_(due, audit_keys.c.subject.not_in(holds))
            kids = set(conn.execute(sa.select(audit_keys.c.kid).where(due)).scalars())
            if kids:
                conn.execute(audit_keys.delete().where(due))
                bump_generation(conn)
        self.keyring.forget(kids)
        if kids:
            receipt = notice("retention", by=actor, keys_destroyed=len(kids), before=cutoff, held=len(holds))
            self.log.append([encode_event(receipt.envelope)])
        return {"keys_destroyed": len(kids), "held": len(holds), "before": cutoff}

    def _held(self, subject: str) -> str:
        """What a hold names: "*", or the subject's pseudonym."""
        return ALL if subject == ALL else self.keyring.pseudonym(_check(subject))

    def hold(self, subject: str, reason: str, actor: str) -> dict[str, Any]:
        target = self._held(subject)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(audit_holds.c.subject).where(audit_holds.c.subject == target)).first():
                raise SubjectError("this subject is already under a legal hold", conflict=True)
            conn.execute(audit_holds.insert().values(subject=target, reason=reason[:500], created_by=actor[:200],
                                                     created_at=datetime.now(UTC)))
        self.log.append([encode_event(notice("hold", by=actor, scope="all" if target == ALL else "subject",
                                             placed=True).envelope)])
        return {"held": True}

    def release(self, subject: str, actor: str) -> dict[str, Any]:
        target = self._held(subject)
        with self.engine.begin() as conn:
            gone = conn.execute(audit_holds.delete().where(audit_holds.c.subject == target)).rowcount
        if not gone:
            raise SubjectError("this subject is not under a legal hold")
        self.log.append([encode_event(notice("hold", by=actor, scope="all" if target == ALL else "subject",
                                             placed=False).envelope)])
        return {"held": False}


def _check(subject: str) -> str:
    tenant, sep, user = subject.partition("/")
    if not sep or not tenant or not user or len(subject) > 300 or subject != subject.strip():
        raise SubjectError(f"a subject is TENANT/USER (the user id, or the key id or token subject of calls "
                           f"that named no user), e.g. acme/alice; not {subject[:100]!r}")
    return subject


def tenant_of(subject: str) -> str:
    return subject.partition("/")[0]


def _reviews_of(subject: str) -> sa.ColumnElement[bool]:
    tenant, _, user = subject.partition("/")
    return sa.and_(reviews.c.tenant_id == tenant, sa.or_(
        reviews.c.user_id == user, reviews.c.principal.in_([f"jwt:{user}", f"key:{user}"])))


def _month(at: datetime) -> str:
    return at.strftime("%Y-%m")


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
