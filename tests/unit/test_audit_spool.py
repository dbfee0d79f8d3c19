"""The local spool: durable appends read back in order, torn tails skipped, segments rotated and
deleted behind the cursor, and slots owned by one live process each."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostiary.audit import spool as spool_module
from ostiary.audit.spool import Cursor, Spool


def test_records_come_back_in_order_and_the_cursor_survives_a_restart(tmp_path: Path) -> None:
    s = Spool.claim(tmp_path)
    s.append([b"a", b"bb"])
    s.append([b"ccc"])
    records, cur = s.read(s.cursor())
    assert records == [b"a", b"bb", b"ccc"]
    s.commit(Cursor(cur.segment, cur.offset))
    s.release()
    again = Spool.claim(tmp_path)
    assert again.path == s.path  # the slot is free again once its process let go
    assert again.read(again.cursor())[0] == []
    again.append([b"d"])  # a new process writes a new segment
    assert again.read(again.cursor())[0] == [b"d"]
    again.release()


def test_a_torn_tail_is_skipped_and_later_segments_are_read(tmp_path: Path) -> None:
    s = Spool.claim(tmp_path)
    s.append([b"first"])
    segment = min(s.path.glob("*.log"))
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x00\x10\x00\x00")  # a frame header cut by a crash
    s.release()
    after = Spool.claim(tmp_path)
    after.append([b"second"])
    records, _ = after.read(Cursor(0, 0))
    assert records == [b"first", b"second"]
    after.release()


def test_a_corrupt_frame_stops_the_segment_at_the_last_good_record(tmp_path: Path) -> None:
    s = Spool.claim(tmp_path)
    s.append([b"good", b"evil"])
    segment = min(s.path.glob("*.log"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # the CRC no longer matches
    segment.write_bytes(bytes(data))
    assert s.read(Cursor(0, 0))[0] == [b"good"]
    s.release()


def test_segments_rotate_and_are_deleted_once_drained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 64)
    s = Spool.claim(tmp_path)
    for i in range(10):
        s.append([b"x" * 40 + str(i).encode()])
    assert len(list(s.path.glob("*.log"))) >= 5
    records, cur = s.read(s.cursor(), limit=100)
    assert [r[-1:] for r in records] == [str(i).encode() for i in range(10)]
    s.commit(cur)
    assert len(list(s.path.glob("*.log"))) == 1  # only the one being written
    assert s.pending_bytes() == 0
    s.release()


def test_two_live_owners_get_two_slots(tmp_path: Path) -> None:
    a, b = Spool.claim(tmp_path), Spool.claim(tmp_path)
    assert a.path != b.path
    assert Spool.try_slot(a.path) is None  # held
    a.release()
    taken = Spool.try_slot(a.path)
    assert taken is not None
    taken.release()
    b.release()
