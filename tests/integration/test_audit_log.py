"""The audit log on real SQLite and PostgreSQL: appends through the spool, verification, every tamper
case the verifier must catch, two writers at once, erasure, retention and holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from ostiary.audit.checkpoint import Checkpoint, NoteError, Signer
from ostiary.audit.crypto import ERASED
from ostiary.audit.event import describe
from ostiary.audit.evidence import BundleError, check_bundle, make_bundle
from ostiary.audit.export import export
from ostiary.audit.log import AuditLog
from ostiary.audit.subjects import SubjectError, Subjects
from ostiary.audit.trail import AuditTrail
from ostiary.audit.verify import verify
from ostiary.config.schema import Audit
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Call
from ostiary.store import Store
from ostiary.store.events import record
from ostiary.store.schema import audit_checkpoints, audit_keys, audit_log, feedback, reviews


def _principal(user: str, tenant: str = "acme") -> Principal:
    return Principal(kind="key", subject="ost-k1", tenant=tenant, user=user, role="developer",
                     scopes=frozenset({"chat"}), models=None, clearance="internal")


def _call(n: int, user: str = "alice", tenant: str = "acme") -> Call:
    call = Call(id=f"req-{n}", api="openai.chat", body={"model": "m", "messages": [
        {"role": "user", "content": f"secret plan number {n} of {user}"}]}, model="m", stream=False,
        config_version="v1", client_ip="10.0.0.7")
    call.principal = _principal(user, tenant)
    call.route, call.deployment = "m", "mock:m"
    return call


@pytest.fixture
def trail(store: Store, tmp_path: Path) -> Iterator[AuditTrail]:
    cfg = Audit(checkpoint_every=4, checkpoint_seconds=3600, witness_dir=tmp_path / "witness")
    t = AuditTrail(cfg, store, tmp_path / "data", drainer_process=False)
    t.start()
    yield t
    t.close()


def _fill(trail: AuditTrail, n: int, user: str = "alice", start: int = 0) -> None:
    for i in range(start, start + n):
        answer = {"content": f"answer {i} for {user}", "tool_calls": None}
        trail.record_sync(describe(_call(i, user), 200, None, answer, time.perf_counter()))
        trail.flush()  # one drain per event: checkpoints fall where `checkpoint_every` says
    trail.log.append([], force_checkpoint=True)


def _verify(trail: AuditTrail):  # type: ignore[no-untyped-def]
    return verify(trail.log, [trail.signer.verifier()], trail.cfg.witness_dir)


def _dba(store: Store, *statements: str | tuple[str, dict[str, object]]) -> None:
    """What a database administrator can do: drop the append-only triggers and rewrite rows."""
    with store.engine.begin() as conn:
        for table in ("audit_log", "audit_checkpoints"):
            if conn.dialect.name == "sqlite":
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
            else:
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
        for s in statements:
            text, params = (s, {}) if isinstance(s, str) else s
            conn.execute(sa.text(text), params)


def _body(store: Store, seq: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(sa.select(audit_log.c.body).where(audit_log.c.seq == seq)).scalar_one())


def test_events_are_appended_in_order_and_verify(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 10)
    report = _verify(trail)
    assert report.ok, report.problems
    # Checkpoints at 1 (the first drain), every 4 events after it, and the forced last one.
    assert report.size == 10 and report.checkpoints >= 2 and report.witnessed == report.checkpoints
    assert trail.log.latest_checkpoint().size == 10  # type: ignore[union-attr]
    event = orjson.loads(_body(store, 3))
    assert event["seq"] == 3 and event["request_id"] == "req-3" and event["tenant"] == "acme"
    # Personal content is never stored in clear: not the prompt, not the user, not the address.
    stored = _body(store, 3)
    assert "secret plan" not in stored and "alice" not in stored and "10.0.0.7" not in stored
    opened = Subjects(trail.log, trail.keyring).open(trail.log.find("req-3"))
    assert opened["content"]["request"]["messages"][0]["content"] == "secret plan number 3 of alice"
    assert opened["content"]["user"] == "alice" and opened["content"]["ip"] == "10.0.0.7"


def test_the_log_refuses_update_delete_and_truncate(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 2)
    attempts = ["UPDATE audit_log SET kind = 'x' WHERE seq = 0", "DELETE FROM audit_log WHERE seq = 1",
                "UPDATE audit_checkpoints SET root = 'x'", "DELETE FROM audit_checkpoints"]
    if store.engine.dialect.name == "postgresql":
        attempts += ["TRUNCATE audit_log", "TRUNCATE audit_checkpoints"]
    for statement in attempts:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert _verify(trail).ok


@pytest.mark.parametrize("case", ["edited", "edited_and_rehashed", "deleted", "swapped", "truncated"])
def test_every_tampering_is_caught_with_the_first_bad_index(trail: AuditTrail, store: Store, case: str) -> None:
    _fill(trail, 10)
    body5 = _body(store, 5)
    if case == "edited":
        forged = body5.replace('"status":200', '"status":403')
        _dba(store, ("UPDATE audit_log SET body = :b WHERE seq = 5", {"b": forged}))
        expected = 5
    elif case == "edited_and_rehashed":
        from ostiary.audit.merkle import leaf_hash

        forged = body5.replace('"status":200', '"status":403')
        _dba(store, ("UPDATE audit_log SET body = :b, leaf = :h WHERE seq = 5",
                     {"b": forged, "h": leaf_hash(forged.encode()).hex()}))
        # Somewhere after the last checkpoint that still holds.
        expected = max(int(c.size) for c in trail.log.checkpoints() if c.size <= 5)
    elif case == "deleted":
        _dba(store, "DELETE FROM audit_log WHERE seq = 5")
        expected = 5
    elif case == "swapped":
        body6 = _body(store, 6)
        _dba(store, "UPDATE audit_log SET seq = -1 WHERE seq = 5", "UPDATE audit_log SET seq = 5 WHERE seq = 6",
             "UPDATE audit_log SET seq = 6 WHERE seq = -1")
        assert _body(store, 5) == body6
        expected = 5
    else:
        _dba(store, "DELETE FROM audit_log WHERE seq >= 8")
        expected = 8
    report = _verify(trail)
    assert not report.ok
    assert report.first_bad == expected, report.problems


def test_a_rollback_to_an_older_snapshot_is_caught_by_the_witness(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 4)
    # The administrator restores a backup taken at size 4 after 4 more events were witnessed.
    _fill(trail, 4, start=4)
    _dba(store, "DELETE FROM audit_log WHERE seq >= 4", "DELETE FROM audit_checkpoints WHERE size > 4")
    report = _verify(trail)
    assert not report.ok and report.first_bad == 4
    assert any("witness" in p for p in report.problems)
    # Without the witness the rollback would look like a shorter, valid log: that is what witnesses are for.
    assert verify(trail.log, [trail.signer.verifier()]).ok


def test_forged_resigned_and_inconsistent_checkpoints_are_caught(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 8)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc())).first()
    assert row is not None
    # Re-signed by someone else's key under the same name: the signature does not verify.
    impostor = Signer.generate(trail.signer.name)
    resigned = impostor.sign(Checkpoint(trail.cfg.origin, row.size, bytes.fromhex(row.root)))
    _dba(store, ("UPDATE audit_checkpoints SET note = :n WHERE size = :s", {"n": resigned, "s": row.size}))
    report = _verify(trail)
    assert not report.ok and any("checkpoint at size" in p for p in report.problems)
    # Signed with the real key but over another history (a fork): it does not match and is not
    # consistent with its predecessor.
    forked = trail.signer.sign(Checkpoint(trail.cfg.origin, row.size, b"\x01" * 32))
    _dba(store, ("UPDATE audit_checkpoints SET note = :n, root = :r WHERE size = :s",
                 {"n": forked, "r": "01" * 32, "s": row.size}))
    report = _verify(trail)
    assert not report.ok and any("does not match the log" in p for p in report.problems)


def test_evidence_bundle_checks_offline_and_fails_when_altered(trail: AuditTrail) -> None:
    _fill(trail, 7)
    bundle = make_bundle(trail.log, "req-3")
    summary = check_bundle(orjson.loads(orjson.dumps(bundle)), [trail.signer.verifier()])
    assert summary["ok"] and summary["index"] == 3
    altered = {**bundle, "event": bundle["event"].replace('"status":200', '"status":500')}
    with pytest.raises(BundleError, match="inclusion proof"):
        check_bundle(altered, [trail.signer.verifier()])
    with pytest.raises(BundleError, match="trusted"):
        check_bundle(bundle, [Signer.generate("other").verifier()])


def test_two_writers_append_to_one_log_without_forking_it(store: Store, tmp_path: Path) -> None:
    cfg = Audit(checkpoint_every=16, checkpoint_seconds=3600)
    # Two processes' worth of writers: each its own engine, spool and keys file set (shared keys).
    trails = [AuditTrail(cfg, Store(store.url), tmp_path / "shared", drainer_process=False) for _ in range(2)]
    for t in trails:
        t.start()
    try:
        def run(t: AuditTrail, w: int) -> None:
            for i in range(60):
                t.record_sync(describe(_call(w * 1000 + i, f"user{w}"), 200, None, None, time.perf_counter()))

        threads = [threading.Thread(target=run, args=(t, w)) for w, t in enumerate(trails)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for t in trails:
            t.flush()
        trails[0].log.append([], force_checkpoint=True)
        report = _verify(trails[0])
        assert report.ok, report.problems
        with store.engine.connect() as conn:
            seqs = list(conn.execute(sa.select(audit_log.c.seq).where(audit_log.c.kind == "request")
                                     .order_by(audit_log.c.seq)).scalars())
        assert len(seqs) == 120 and seqs == list(range(seqs[0], seqs[0] + 120))
    finally:
        for t in trails:
            t.close()


def test_a_replayed_spool_stores_each_event_once(trail: AuditTrail) -> None:
    _fill(trail, 3)
    records, _ = trail.spool.read(trail.spool.cursor().__class__(0, 0), 1000)
    assert sum(1 for r in records if r[:1] == b"e") == 3
    before = trail.log.size()
    trail.log.append(records)  # a crash between the store's commit and the cursor's save
    assert trail.log.size() == before
    assert _verify(trail).ok


def test_administrative_events_join_the_log(trail: AuditTrail, store: Store) -> None:
    with store.engine.begin() as conn:
        record(conn, actor="cli", actor_tenant=None, action="key.create", tenant="acme", target="ost-k9",
               details={"role": "developer"})
    trail.log.append([])
    with store.engine.connect() as conn:
        body = conn.execute(sa.select(audit_log.c.body).where(audit_log.c.kind == "admin")).scalar_one()
    assert '"action":"key.create"' in body and '"target":"ost-k9"' in body
    trail.log.append([])  # taken over once only
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(audit_log.c.kind == "admin")).scalar() == 1


def test_erasure_destroys_content_everywhere_and_the_log_still_verifies(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 3, user="alice")
    _fill(trail, 2, user="bob", start=10)
    now = datetime.now(UTC)
    pseudonym = trail.keyring.pseudonym("acme/alice")
    with store.engine.begin() as conn:
        conn.execute(reviews.insert().values(
            id="rev-1", created_at=now, tenant_id="acme", principal="key:ost-k1", request_id="req-1", route="m",
            policy="p", policy_version="v", scanner="pii", segment="user", entities={}, excerpt="alice's text",
            status="pending", user_id="alice"))
        conn.execute(feedback.insert().values(id="fb-1", request_id="req-1", tenant_id="acme", principal="key:ost-k1",
                                              subject=pseudonym, score=1.0, comment="great, says alice",
                                              created_at=now))
    subjects = Subjects(trail.log, trail.keyring)
    exported = subjects.export("acme/alice")
    assert len(exported["events"]) == 3 and exported["reviews"] and exported["feedback"]
    receipt = subjects.erase("acme/alice", "cli")
    assert receipt["keys_destroyed"] >= 1 and receipt["events"] == 3
    assert receipt["reviews"] == 1 and receipt["feedback"] == 1
    # A fresh reader (another replica, the CLI) finds nothing to decrypt with.
    fresh = Subjects(trail.log, type(trail.keyring)(trail.keyring.wrapper))
    assert all(e["content"] == ERASED for e in fresh.export("acme/alice")["events"])
    assert fresh.open(trail.log.find("req-10"))["content"]["user"] == "bob"
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_keys)
                            .where(audit_keys.c.subject == pseudonym)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(reviews)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(feedback)).scalar() == 0
        receipt_body = conn.execute(sa.select(audit_log.c.body).where(audit_log.c.kind == "erasure")).scalar_one()
    assert "alice" not in receipt_body and pseudonym not in receipt_body
    assert _verify(trail).ok


def test_retention_shreds_old_months_except_under_a_hold(trail: AuditTrail, store: Store) -> None:
    _fill(trail, 2, user="alice")
    _fill(trail, 2, user="carol", start=5)
    subjects = Subjects(trail.log, trail.keyring)
    subjects.hold("acme/carol", "litigation 2026-17", "cli")
    with pytest.raises(SubjectError, match="legal hold"):
        subjects.erase("acme/carol", "cli")
    later = datetime(2099, 1, 1, tzinfo=UTC)
    result = subjects.retain(180, now=later)
    assert result["keys_destroyed"] >= 1 and result["held"] == 1
    fresh = Subjects(trail.log, type(trail.keyring)(trail.keyring.wrapper))
    assert fresh.open(trail.log.find("req-0"))["content"] == ERASED
    assert fresh.open(trail.log.find("req-5"))["content"]["user"] == "carol"
    # The envelope outlives the content.
    assert fresh.open(trail.log.find("req-0"))["status"] == 200
    subjects.release("acme/carol", "cli")
    assert subjects.retain(180, now=later)["keys_destroyed"] >= 1
    assert _verify(trail).ok


def test_export_formats_include_checkpoints(trail: AuditTrail) -> None:
    _fill(trail, 5)
    lines = list(export(trail.log, "jsonl"))
    kinds = [orjson.loads(line)["kind"] for line in lines]
    assert kinds.count("request") == 5 and "checkpoint" in kinds
    cef = list(export(trail.log, "cef"))
    assert cef[0].startswith("CEF:0|Ostiary|Ostiary Gateway|1|request|") and "externalId=req-0" in cef[0]
    syslog = list(export(trail.log, "syslog"))
    assert syslog[0].startswith("<109>1 ") and ' ostiary - request [ostiary@32473 seq="0" tenant="acme"] ' in syslog[0]
    assert list(export(trail.log, "jsonl", since=datetime(2099, 1, 1, tzinfo=UTC))) == []
    # A window, given in another zone, is selected by the database in UTC: [second event, fourth).
    times = [r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC) for r in trail.log.rows() if r.kind == "request"]
    zone = timezone(timedelta(hours=2))
    window = [orjson.loads(line) for line in export(trail.log, "jsonl", since=times[1].astimezone(zone),
                                                    until=times[3].astimezone(zone))]
    assert [e["request_id"] for e in window if e["kind"] == "request"] == ["req-1", "req-2"]


def test_a_checkpoint_from_an_unknown_key_is_refused(trail: AuditTrail) -> None:
    _fill(trail, 2)
    note = trail.log.latest_checkpoint().note  # type: ignore[union-attr]
    with pytest.raises(NoteError):
        from ostiary.audit.checkpoint import open_note

        open_note(note, [Signer.generate(trail.signer.name).verifier()])


def test_audit_log_class_is_usable_without_a_trail(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, Signer.generate("ostiary/audit"), "ostiary/audit", every=1)
    appended = log.append([])
    assert appended.size == 0 and appended.checkpoint is None


def test_checkpoints_are_posted_to_a_witness_url(store: Store) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[str] = []

    class Witness(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])).decode())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Witness)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signer = Signer.generate("ostiary/audit")
    try:
        log = AuditLog(store, signer, "ostiary/audit", every=1, witness_url=f"http://127.0.0.1:{server.server_port}/")
        from ostiary.audit.event import notice
        from ostiary.audit.log import encode_event

        log.append([encode_event(notice("test").envelope)])
        log.append([encode_event(notice("test").envelope)])
    finally:
        server.shutdown()
    from ostiary.audit.checkpoint import open_note

    assert [open_note(n, [signer.verifier()]).size for n in received] == [1, 2]
    # A witness that is down does not stop the log.
    AuditLog(store, signer, "ostiary/audit", every=1, witness_url="http://127.0.0.1:9/").append(
        [encode_event(notice("test").envelope)])
    assert log.size() == 3
