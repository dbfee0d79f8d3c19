"""`ostiary audit verify`: recompute the log from its stored events and check everything against it.

What is checked, in one pass over the events in order:
- indexes are contiguous from 0 (a deleted event leaves a gap), and each body starts with its own
  index (`{"seq":N,`), so two swapped events are caught where they stand;
- each stored leaf hash is the RFC 6962 hash of its body (an edited body with its old hash);
- every checkpoint's signature verifies with a trusted key (a forged or re-signed one fails), its
  root equals the root recomputed at its size (an edited body *with* a recomputed hash, a rewrite;
  checkpoints that all match one recomputed tree are consistent with each other, so a checkpoint
  inconsistent with its predecessor is one that does not match);
- no checkpoint, in the store or in the witness directory, is larger than the log (a truncated tail,
  or a database rolled back to an older snapshot that the witness outlived);
- every stored tile (audit/tiles.py) is the root of its events: a wrong one would make true proofs fail.

The first bad index is reported: exactly where a body or its place is wrong, otherwise the range
between the last good checkpoint and the first bad one. An edit that keeps every checkpoint right
cannot exist without the signing key; one after the last checkpoint is only caught once the next
checkpoint is signed, which is why checkpoints come every N events or T seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ostiary.audit import merkle
from ostiary.audit.checkpoint import Checkpoint, NoteError, Verifier, open_note
from ostiary.audit.event import notice
from ostiary.audit.log import AuditLog, encode_event
from ostiary.audit.tiles import LEVELS, WIDTH


@dataclass(slots=True)
class Report:
    size: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    first_bad: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad(self, index: int | None, problem: str) -> None:
        if index is not None and (self.first_bad is None or index < self.first_bad):
            self.first_bad = index
        if len(self.problems) < 50:
            self.problems.append(problem)

    def public(self) -> dict[str, object]:
        return {"ok": self.ok, "size": self.size, "checkpoints": self.checkpoints, "witnessed": self.witnessed,
                "first_bad_index": self.first_bad, "problems": self.problems}


class _Tiles:
    """Recomputes the tiles from the stored leaf hashes as they pass (what proofs are made of) and
    compares the stored ones (audit/tiles.py). After a gap in the log nothing more is compared: the
    gap is the problem, and every later tile would be misaligned."""

    def __init__(self, stored: dict[tuple[int, int], bytes]) -> None:
        self.stored = stored
        self.problems: list[str] = []
        self.pending: dict[int, list[bytes]] = {level: [] for level in range(LEVELS + 1)}
        self.count: dict[int, int] = dict.fromkeys(range(LEVELS + 1), 0)
        self.position = 0
        self.broken = False

    def add(self, seq: int, leaf: bytes) -> None:
        if seq != self.position:
            self.broken = True
        self.position = seq + 1
        if not self.broken:
            self._push(0, leaf)

    def _push(self, level: int, node: bytes) -> None:
        group = self.pending[level]
        group.append(node)
        if len(group) < WIDTH or level == LEVELS:
            return
        idx = self.count[level + 1]
        self.count[level + 1] += 1
        root = merkle.root(group)
        group.clear()
        found = self.stored.pop((level + 1, idx), None)
        if found is not None and found != root and len(self.problems) < 5:
            self.problems.append(f"tile {level + 1}/{idx} does not match the leaf hashes under it: proofs over "
                                 "those events fail")
        self._push(level + 1, root)

    def finish(self) -> list[str]:
        if not self.broken:
            self.problems += [f"tile {level}/{idx} covers events the log does not have"
                              for level, idx in sorted(self.stored)[:5]]
        return self.problems[:5]


def verify(log: AuditLog, verifiers: list[Verifier], witness_dir: Path | None = None) -> Report:
    report = Report()
    stored = [(int(r.size), r.root, r.note) for r in log.checkpoints()]
    witnessed = _witnessed(witness_dir, verifiers, log.origin, report)
    wanted = {size for size, _, _ in stored} | set(witnessed)
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    tree = merkle.Tree()
    expected = 0
    tile_check = _Tiles(log.tiles())
    for row in log.rows():
        if row.seq != expected:
            report.bad(expected, f"events {expected}..{row.seq - 1} are missing (deleted)")
            expected = row.seq
        body = row.body.encode()
        if not body.startswith(b'{"seq":%d,' % row.seq):
            report.bad(row.seq, f"event {row.seq} does not carry its own index: moved or swapped")
        leaf = merkle.leaf_hash(body)
        if leaf.hex() != row.leaf:
            report.bad(row.seq, f"event {row.seq} was edited: its body does not hash to its stored leaf")
        tree.append(leaf)
        tile_check.add(row.seq, bytes.fromhex(row.leaf))
        expected += 1
        if tree.size in wanted:
            roots[tree.size] = tree.root()
    report.size = tree.size
    previous: tuple[int, bytes] | None = None  # the last good checkpoint
    for size, root_hex, note in stored:
        report.checkpoints += 1
        cp = _open(note, verifiers, log.origin, f"checkpoint at size {size}", report)
        if cp is None:
            continue
        if cp.size != size or cp.root.hex() != root_hex:
            report.bad(None, f"checkpoint at size {size}: its row does not match its signed note")
        if size > tree.size:
            report.bad(tree.size, f"the log has {tree.size} events but a checkpoint was signed at size {size}: "
                                  "its tail was truncated")
            continue
        low = previous[0] if previous else 0
        # Both roots come from one recomputed tree, so two checkpoints that match it are consistent
        # with each other; one that does not match is inconsistent with every good one.
        if roots.get(size) != cp.root:
            report.bad(_within(report, low, size), f"checkpoint at size {size} does not match the log (nor the "
                                                   f"checkpoint at {low}): events in {low}..{size - 1} were rewritten")
            continue
        previous = (size, cp.root)
    for size, cp in sorted(witnessed.items()):
        report.witnessed += 1
        if size > tree.size:
            report.bad(tree.size, f"the witness holds a checkpoint at size {size} but the log has {tree.size} "
                                  "events: the log was truncated or rolled back")
        elif roots.get(size) != cp.root:
            report.bad(None, f"the witness's checkpoint at size {size} does not match the log: history was rewritten")
    for problem in tile_check.finish():  # last: derived data, after what the events and checkpoints say
        report.bad(None, problem)
    return report


def trusted(log: AuditLog, configured: list[str], given: list[str] | None = None) -> list[Verifier]:
    """The keys a verification trusts: those given, else the log's own signer and the configured
    earlier ones (`audit.verifier_keys`)."""
    keys = given or [log.signer.verifier().key_string(), *configured]
    return [Verifier.from_key_string(k) for k in keys]


def verify_and_record(log: AuditLog, keys: list[Verifier], witness_dir: Path | None, **who: str) -> Report:
    """Verify, then append the run itself to the log (after the part it checked)."""
    report = verify(log, keys, witness_dir)
    log.append([encode_event(notice("verify", **who, ok=report.ok, size=report.size, checkpoints=report.checkpoints,
                                    first_bad_index=report.first_bad).envelope)])
    return report


def _within(report: Report, low: int, size: int) -> int | None:
    """A checkpoint says something in [low, size) is wrong; an exact index found there already is better."""
    return None if report.first_bad is not None and report.first_bad < size else low


def _witnessed(directory: Path | None, verifiers: list[Verifier], origin: str, report: Report) -> dict[int, Checkpoint]:
    out: dict[int, Checkpoint] = {}
    if directory is None:
        return out
    if not directory.is_dir():
        report.bad(None, f"the witness directory {directory} does not exist")
        return out
    for path in sorted(directory.glob("checkpoint-*")):
        cp = _open(path.read_text(), verifiers, origin, f"witness file {path.name}", report)
        if cp is not None:
            out[cp.size] = cp
    return out


def _open(note: str, verifiers: list[Verifier], origin: str, what: str, report: Report) -> Checkpoint | None:
    try:
        return open_note(note, verifiers, origin=origin)
    except NoteError as e:
        report.bad(None, f"{what}: {e}")
        return None
