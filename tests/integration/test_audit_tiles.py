"""Audit tiles on SQLite and PostgreSQL: stored as appends complete them (across batch boundaries),
proofs from them equal proofs over every leaf, a log from before tiles still proves, and a tampered
tile is caught by the verifier (and only makes proofs fail)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from ostiary.audit import merkle, tiles
from ostiary.audit.checkpoint import Signer
from ostiary.audit.event import notice
from ostiary.audit.log import AuditLog, encode_event
from ostiary.audit.verify import verify
from ostiary.store import Store
from ostiary.store.schema import audit_log, audit_tiles


def _log(store: Store) -> tuple[AuditLog, Signer]:
    signer = Signer.generate("ostiary/audit")
    return AuditLog(store, signer, "ostiary/audit", every=10_000, seconds=3600), signer


def _append(log: AuditLog, n: int, batches: list[int]) -> None:
    done, i = 0, 0
    while done < n:
        size = min(batches[i % len(batches)], n - done)
        log.append([encode_event(notice("test", n=done + j).envelope) for j in range(size)])
        done += size
        i += 1


def _leaves(store: Store) -> list[bytes]:
    with store.engine.connect() as conn:
        return [bytes.fromhex(h) for h in conn.execute(sa.select(audit_log.c.leaf).order_by(audit_log.c.seq)).scalars()]


def test_tiles_make_the_same_proofs_as_every_leaf(store: Store) -> None:
    log, _ = _log(store)
    _append(log, 1300, [7, 300, 1, 256, 511])  # tiles completed inside, across and at batch ends
    leaves = _leaves(store)
    with store.engine.connect() as conn:
        level1 = conn.execute(sa.select(audit_tiles.c.idx, audit_tiles.c.hash).where(audit_tiles.c.level == 1)
                              .order_by(audit_tiles.c.idx)).all()
    assert [i for i, _ in level1] == list(range(1300 // 256))
    assert all(bytes.fromhex(h) == merkle.root(leaves[i * 256:(i + 1) * 256]) for i, h in level1)
    rng = random.Random(7)
    for size in (1, 255, 256, 257, 512, 513, 1024, 1299, 1300):
        for seq in {0, size - 1, rng.randrange(size)}:
            assert log.inclusion(seq, size) == merkle.inclusion_proof(leaves, seq, size), (seq, size)
        old = rng.randrange(1, size + 1)
        assert log.consistency(old, size) == merkle.consistency_proof(leaves, old, size), (old, size)
    assert verify(log, [log.signer.verifier()]).ok


def test_a_log_from_before_tiles_still_proves(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = _log(store)
    monkeypatch.setattr(tiles, "store_completed", lambda conn, first, leaves: 0)  # an older gateway
    _append(log, 700, [100])
    monkeypatch.undo()
    _append(log, 600, [600])  # tiles from here on; the ones before are missing
    leaves = _leaves(store)
    for seq, size in ((3, 1300), (600, 1024), (1299, 1300), (1000, 1200)):
        assert log.inclusion(seq, size) == merkle.inclusion_proof(leaves, seq, size)
    assert log.consistency(300, 1300) == merkle.consistency_proof(leaves, 300, 1300)


def test_the_second_level_is_built_from_the_first(tmp_path: Path) -> None:
    store = Store.open(None, tmp_path)  # 65,536 events: SQLite is enough to exercise the level
    try:
        log, _ = _log(store)
        _append(log, 65_536 + 300, [5000])
        with store.engine.connect() as conn:
            level2 = conn.execute(sa.select(audit_tiles.c.hash).where(audit_tiles.c.level == 2)).scalars().all()
        leaves = _leaves(store)
        assert level2 == [merkle.root(leaves[:65_536]).hex()]
        assert log.inclusion(65_800, 65_836) == merkle.inclusion_proof(leaves, 65_800, 65_836)
        assert verify(log, [log.signer.verifier()]).ok
    finally:
        store.close()


def test_a_tampered_tile_is_reported_and_only_breaks_proofs(tmp_path: Path) -> None:
    store = Store.open(None, tmp_path)
    try:
        log, _ = _log(store)
        _append(log, 600, [600])
        with store.engine.begin() as conn:  # an attacker with the owner's rights
            conn.exec_driver_sql("DROP TRIGGER audit_tiles_no_update")
            conn.execute(audit_tiles.update().where(audit_tiles.c.level == 1, audit_tiles.c.idx == 0)
                         .values(hash="00" * 32))
        report = verify(log, [log.signer.verifier()])
        assert not report.ok and report.first_bad is None
        assert report.problems == ["tile 1/0 does not match the leaf hashes under it: proofs over those events fail"]
        leaves = _leaves(store)
        proof = log.inclusion(300, 600)  # its sibling subtree is the bad tile
        assert not merkle.verify_inclusion(leaves[300], 300, 600, proof, merkle.root(leaves))
    finally:
        store.close()


def test_tiles_are_append_only(store: Store) -> None:
    log, _ = _log(store)
    _append(log, 256, [256])
    for statement in (audit_tiles.update().values(hash="00" * 32), audit_tiles.delete()):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)


def test_a_log_from_before_tiles_is_backfilled_and_a_gap_gives_no_false_tile_reports(tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch
                                                                                      ) -> None:
    store = Store.open(None, tmp_path)
    try:
        log, _ = _log(store)
        monkeypatch.setattr(tiles, "store_completed", lambda conn, first, leaves: 0)  # an older gateway
        _append(log, 1000, [250])
        monkeypatch.undo()
        _append(log, 300, [300])
        with store.engine.connect() as conn:
            assert sorted(tiles.stored(conn)) == [(1, 3), (1, 4)]  # only those completed since
            # A missing tile is computed from what is below it: the leaves of tiles 0..2 only.
            reads: list[tuple[int, int]] = []
            real = tiles.read_leaves
            monkeypatch.setattr(tiles, "read_leaves", lambda c, a, b: reads.append((a, b)) or real(c, a, b))
            assert tiles.subtree_root(conn, 0, 1024) == merkle.root(_leaves(store)[:1024])
            monkeypatch.undo()
        assert sum(b - a for a, b in reads) == 3 * 256
        assert log.backfill_tiles(per_round=2) == 3
        with store.engine.connect() as conn:
            assert sorted(tiles.stored(conn)) == [(1, i) for i in range(5)]
        assert verify(log, [log.signer.verifier()]).ok
        with store.engine.begin() as conn:  # an event deleted by an attacker with the owner's rights
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
            conn.execute(audit_log.delete().where(audit_log.c.seq == 10))
        report = verify(log, [log.signer.verifier()])
        assert report.first_bad == 10 and not [p for p in report.problems if "tile" in p]
    finally:
        store.close()
