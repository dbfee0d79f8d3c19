"""The log in the store: one sequencer appends, checkpoints are signed, proofs are read back.

Appending takes the head row's lock (an UPDATE of `audit_head` opens the transaction: a row lock on
PostgreSQL, the write lock on SQLite), so any number of replicas append to one log without forking
it: each batch gets the next indexes and extends the Merkle frontier kept in the head. In the same
transaction the sequencer takes over the administrative events committed since the last batch, and
signs a checkpoint when `checkpoint_every` events or `checkpoint_seconds` have passed.

An event's stored body is its JSON with its index first (`{"seq":N,...`); the Merkle leaf is the
RFC 6962 leaf hash of those bytes. Records already in the log (a spool replayed after a crash
replays the records whose cursor was not yet saved) are recognised by their uid and skipped.
"""

from __future__ import annotations

import base64
import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from ostiary.audit import merkle, tiles
from ostiary.audit.checkpoint import Checkpoint, Signer
from ostiary.audit.event import Pending, administrative
from ostiary.store import Store
from ostiary.store.schema import admin_events, audit_checkpoints, audit_head, audit_keys, audit_log

log = logging.getLogger("ostiary.audit")
ADMIN_BATCH = 500
READ_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Appended:
    size: int
    added: int
    checkpoint: str | None  # the note of a checkpoint signed by this append


class AuditLog:
    def __init__(self, store: Store, signer: Signer, origin: str, every: int = 1000, seconds: float = 10.0,
                 witness_dir: Path | None = None, witness_url: str | None = None) -> None:
        self.store = store
        self.signer = signer
        self.origin = origin
        self.every = every
        self.seconds = seconds
        self.witness_dir = witness_dir
        self.witness_url = witness_url

    # -- appending ----------------------------------------------------------------------------

    def append(self, records: list[bytes], force_checkpoint: bool = False) -> Appended:
        """Store spool records (b"k" + key JSON, b"e" + header + newline + event JSON) in order, with any pending
        administrative events, and a checkpoint if one is due."""
        keys = [orjson.loads(r[1:]) for r in records if r[:1] == b"k"]
        events = [r[1:] for r in records if r[:1] == b"e"]
        with self.store.engine.begin() as conn:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(size=audit_head.c.size))
            head = conn.execute(sa.select(audit_head).where(audit_head.c.id == 1)).one()
            tree = merkle.Tree.from_dict({"size": head.size, "hashes": head.frontier})
            self._store_keys(conn, keys)
            rows = self._new_rows(conn, events)
            admin = conn.execute(sa.select(admin_events).where(admin_events.c.id > head.admin_cursor)
                                 .order_by(admin_events.c.id).limit(ADMIN_BATCH)).mappings().all()
            admin_cursor = admin[-1]["id"] if admin else head.admin_cursor
            rows += [_encode(administrative(dict(r))) for r in admin]
            stored = []
            leaves = []
            first = tree.size
            sqlite = conn.dialect.name == "sqlite"
            for parsed, body in rows:
                seq = tree.size
                data = b'{"seq":%d,' % seq + body[1:]
                leaf = tree.append_data(data)
                leaves.append(leaf)
                at = parsed["at"]
                stored.append((seq, parsed["uid"], _sqlite_time(at) if sqlite else at, parsed["kind"],
                               _clip(parsed.get("request_id"), 200), _clip(parsed.get("tenant"), 64),
                               parsed.get("subject"), data.decode(), leaf.hex()))
            if stored:
                # The driver's executemany directly: the rows are plain values already, and going
                # through the ORM-free Core path still cost ~30 us of Python per row here.
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                conn.exec_driver_sql(f"INSERT INTO audit_log ({_COLUMNS}) VALUES ({', '.join([mark] * 9)})", stored)
                tiles.store_completed(conn, first, leaves)
            note = None
            now = datetime.now(UTC)
            due = force_checkpoint or tree.size - head.checkpoint_size >= self.every or self._timed_out(head, now)
            values: dict[str, Any] = {"size": tree.size, "frontier": tree.to_dict()["hashes"],
                                      "admin_cursor": admin_cursor}
            if due and tree.size > head.checkpoint_size:
                note = self.signer.sign(Checkpoint(self.origin, tree.size, tree.root()))
                conn.execute(audit_checkpoints.insert().values(size=tree.size, root=tree.root().hex(), note=note,
                                                               at=now))
                values.update(checkpoint_size=tree.size, checkpoint_at=now)
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(**values))
        if note is not None and self.witness_dir is not None:
            witness(self.witness_dir, tree.size, note)
        if note is not None and self.witness_url is not None:
            post_witness(self.witness_url, note)
        return Appended(tree.size, len(stored), note)

    def _store_keys(self, conn: sa.Connection, keys: list[dict[str, Any]]) -> None:
        if not keys:
            return
        have = set(conn.execute(sa.select(audit_keys.c.kid).where(
            audit_keys.c.kid.in_([k["kid"] for k in keys]))).scalars())
        new = [{"kid": k["kid"], "subject": k["subject"], "period": k["period"],
                "wrapped": base64.b64decode(k["wrapped"]), "created_at": _when(k["at"])}
               for k in keys if k["kid"] not in have]
        if new:
            conn.execute(audit_keys.insert(), new)

    def _new_rows(self, conn: sa.Connection, events: list[bytes]) -> list[tuple[dict[str, Any], bytes]]:
        parsed = []
        for record in events:
            # The header line carries the columns, so the body (mostly ciphertext) is never parsed here.
            head, _, body = record.partition(b"\n")
            parsed.append((orjson.loads(head), body))
        uids = [p["uid"] for p, _ in parsed]
        have = set(conn.execute(sa.select(audit_log.c.uid).where(audit_log.c.uid.in_(uids))).scalars()) \
            if uids else set()
        out = []
        for p, body in parsed:
            if p["uid"] not in have:
                have.add(p["uid"])
                out.append((p, body))
        return out

    def due(self) -> bool:
        """Whether an append with no records would do anything (admin events to take over, or a timed
        checkpoint): read without the lock, so an idle replica does not write every second."""
        with self.store.engine.connect() as conn:
            head = conn.execute(sa.select(audit_head).where(audit_head.c.id == 1)).one()
            newest = conn.execute(sa.select(sa.func.max(admin_events.c.id))).scalar()
        if newest is not None and newest > head.admin_cursor:
            return True
        return head.size > head.checkpoint_size and self._timed_out(head, datetime.now(UTC))

    def _timed_out(self, head: Any, now: datetime) -> bool:
        """`checkpoint_seconds` have passed since the last checkpoint (or there is none yet)."""
        last = head.checkpoint_at
        if last is None:
            return True
        last = last.replace(tzinfo=UTC) if last.tzinfo is None else last  # SQLite keeps no zone: UTC
        return (now - last).total_seconds() >= self.seconds

    # -- reading -------------------------------------------------------------------------------

    def size(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one())

    def rows(self, start: int = 0, end: int | None = None, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[sa.Row[Any]]:
        """Stored events in log order, read in chunks; with `since`/`until`, only those whose time is
        in [since, until), selected by the database (times are compared in UTC, as they are stored)."""
        at = start
        while end is None or at < end:
            q = sa.select(audit_log).where(audit_log.c.seq >= at).order_by(audit_log.c.seq).limit(READ_CHUNK)
            if end is not None:
                q = q.where(audit_log.c.seq < end)
            if since is not None:
                q = q.where(audit_log.c.at >= _as_utc(since))
            if until is not None:
                q = q.where(audit_log.c.at < _as_utc(until))
            with self.store.engine.connect() as conn:
                chunk = conn.execute(q).all()
            if not chunk:
                return
            yield from chunk
            at = chunk[-1].seq + 1

    def backfill_tiles(self, per_round: int = 256) -> int:
        """Store the tiles a log written before tiles lacks, a round at a time under the append
        lock (appends wait only for one round); how many were stored."""
        total = 0
        while True:
            with self.store.engine.begin() as conn:
                conn.execute(audit_head.update().where(audit_head.c.id == 1).values(size=audit_head.c.size))
                size = conn.execute(sa.select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one()
                done = tiles.backfill(conn, int(size), per_round)
            total += done
            if done < per_round:
                return total

    def tiles(self) -> dict[tuple[int, int], bytes]:
        with self.store.engine.connect() as conn:
            return tiles.stored(conn)

    def checkpoints(self) -> list[sa.Row[Any]]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size)).all())

    def latest_checkpoint(self) -> sa.Row[Any] | None:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc())
                                .limit(1)).first()

    def find(self, request_id: str | None = None, seq: int | None = None) -> sa.Row[Any] | None:
        q = sa.select(audit_log)
        q = q.where(audit_log.c.seq == seq) if seq is not None else \
            q.where(audit_log.c.request_id == request_id, audit_log.c.kind == "request").order_by(audit_log.c.seq.desc())
        with self.store.engine.connect() as conn:
            return conn.execute(q.limit(1)).first()

    def count_of_subject(self, pseudonym: str) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                                    .where(audit_log.c.subject == pseudonym)).scalar_one())

    def of_subject(self, pseudonym: str) -> list[sa.Row[Any]]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(audit_log).where(audit_log.c.subject == pseudonym)
                                     .order_by(audit_log.c.seq)).all())

    def inclusion(self, seq: int, size: int) -> list[bytes]:
        with self.store.engine.connect() as conn:
            return merkle.inclusion_proof_from(seq, size, lambda a, b: tiles.subtree_root(conn, a, b))

    def consistency(self, old: int, new: int) -> list[bytes]:
        with self.store.engine.connect() as conn:
            return merkle.consistency_proof_from(old, new, lambda a, b: tiles.subtree_root(conn, a, b))


def witness(directory: Path, size: int, note: str) -> None:
    """Write a checkpoint where the database cannot rewrite it: one file per size and `latest`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (f"checkpoint-{size:012d}", "latest"):
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(note)
        os.replace(tmp, directory / name)


def post_witness(url: str, note: str) -> None:
    """Send a checkpoint to a remote witness. A failure is logged, not raised: the checkpoint is in
    the store, and the witness gets the next one (each covers everything before it)."""
    request = urllib.request.Request(url, data=note.encode(), method="POST",
                                     headers={"content-type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
    except (OSError, ValueError) as e:
        log.warning("the audit witness at %s did not take checkpoint: %s", url, e)


def encode_key(kid: str, subject: str, period: str, wrapped: bytes) -> bytes:
    return b"k" + orjson.dumps({"kid": kid, "subject": subject, "period": period,
                                "wrapped": base64.b64encode(wrapped).decode(), "at": datetime.now(UTC).isoformat()})


_HEADER = ("uid", "at", "kind", "request_id", "tenant", "subject")


def encode_event(envelope: dict[str, Any]) -> bytes:
    """A spool record: "e", a header line with the columns the store indexes, the event's JSON."""
    header = {k: envelope.get(k) for k in _HEADER}
    return b"e" + orjson.dumps(header) + b"\n" + orjson.dumps(envelope)


def _encode(p: Pending) -> tuple[dict[str, Any], bytes]:
    return p.envelope, orjson.dumps(p.envelope)


_COLUMNS = "seq, uid, at, kind, request_id, tenant_id, subject, body, leaf"


def _as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _sqlite_time(iso: str) -> str:
    """An event's UTC time ("2026-11-28T19:35:58.324247+00:00") as SQLAlchemy stores times in SQLite."""
    return f"{iso[:10]} {iso[11:26]}" if len(iso) >= 26 and iso.endswith("+00:00") else \
        datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _clip(value: Any, n: int) -> str | None:
    return value[:n] if isinstance(value, str) else None
