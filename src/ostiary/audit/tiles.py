"""Stored roots of complete Merkle subtrees ("tiles"), so that a proof reads a few hundred rows, not
every leaf of the log.

The tile at level L and index i is the RFC 6962 root of the leaves [i*W, (i+1)*W), W = 256**L
(levels 1 to 3: 256, 65,536 and 16.7 million leaves). The sequencer stores each tile in the
transaction of the append that completes it: level 1 from the leaf hashes, higher levels from the
256 tiles below. A proof needs the roots of O(log n) subtrees; an aligned power-of-two subtree is
read from at most 128 tiles of one level, anything under 256 leaves from its leaves.

Tiles are derived data and append-only like the log. A wrong tile cannot make a false proof pass
(the client checks every proof against a signed checkpoint); it can only make a true one fail, and
`ostiary audit verify` recomputes them. A missing tile (a log written before tiles existed) is
computed from the tiles or leaves below it; `ostiary audit tiles` (`backfill`) stores the missing
ones of such a log.
"""

from __future__ import annotations

import sqlalchemy as sa

from ostiary.audit import merkle
from ostiary.store.schema import audit_log, audit_tiles

BITS = 8
WIDTH = 1 << BITS
LEVELS = 3
_READ = 5000


def store_completed(conn: sa.Connection, first: int, leaves: list[bytes]) -> int:
    """Store the tiles that the leaves [first, first + len(leaves)) complete; how many."""
    end = first + len(leaves)
    rows = []
    for t in range(first // WIDTH, end // WIDTH):
        lo = t * WIDTH
        before = read_leaves(conn, lo, first) if lo < first else []  # from earlier batches
        rows.append({"level": 1, "idx": t, "hash": merkle.root(before + leaves[max(0, lo - first):lo + WIDTH - first])
                     .hex()})
    if rows:
        conn.execute(audit_tiles.insert(), rows)
    stored = len(rows)
    for level in range(2, LEVELS + 1):
        width = WIDTH ** level
        upper = []
        for t in range(first // width, end // width):
            found = _from_below(conn, level, t)
            if found is not None:  # else one below is missing (a log older than tiles): `audit tiles`
                upper.append({"level": level, "idx": t, "hash": found})
        if upper:
            conn.execute(audit_tiles.insert(), upper)
        stored += len(upper)
    return stored


def subtree_root(conn: sa.Connection, start: int, end: int) -> bytes:
    """MTH of the leaves [start, end), as the subtrees of RFC 6962 proofs are cut."""
    n = end - start
    if n >= WIDTH and n & (n - 1) == 0 and start % n == 0:
        found = _aligned(conn, start, n)
        if found is not None:
            return found
        if n == WIDTH:
            return merkle.root(read_leaves(conn, start, end))
        # Some tile is missing (a log older than tiles): halve, so only the missing parts read leaves.
        half = n // 2
        return merkle.node_hash(subtree_root(conn, start, start + half), subtree_root(conn, start + half, end))
    if n <= WIDTH:
        return merkle.root(read_leaves(conn, start, end))
    k = merkle.split(n)
    return merkle.node_hash(subtree_root(conn, start, start + k), subtree_root(conn, start + k, end))


def _aligned(conn: sa.Connection, start: int, n: int) -> bytes | None:
    """The root of an aligned power-of-two subtree from the tiles of one level, if they are all there."""
    level = min((n.bit_length() - 1) // BITS, LEVELS)
    width = WIDTH ** level
    hashes = _tiles(conn, level, start // width, n // width)
    return merkle.root(hashes) if len(hashes) == n // width else None


def _tiles(conn: sa.Connection, level: int, first: int, count: int) -> list[bytes]:
    rows = conn.execute(sa.select(audit_tiles.c.hash).where(
        audit_tiles.c.level == level, audit_tiles.c.idx >= first, audit_tiles.c.idx < first + count)
        .order_by(audit_tiles.c.idx)).scalars()
    return [bytes.fromhex(h) for h in rows]


def read_leaves(conn: sa.Connection, start: int, end: int) -> list[bytes]:
    out: list[bytes] = []
    at = start
    while at < end:
        chunk = conn.execute(sa.select(audit_log.c.leaf).where(audit_log.c.seq >= at, audit_log.c.seq < min(
            end, at + _READ)).order_by(audit_log.c.seq)).scalars().all()
        if not chunk:
            break
        out += [bytes.fromhex(h) for h in chunk]
        at += len(chunk)
    if len(out) != end - start:
        raise ValueError(f"the log has no leaves {start + len(out)}..{end - 1}: it is shorter than the tree asked for")
    return out


def stored(conn: sa.Connection) -> dict[tuple[int, int], bytes]:
    """Every tile, by (level, index): what the verifier compares with the roots it recomputes."""
    return {(r.level, r.idx): bytes.fromhex(r.hash) for r in conn.execute(sa.select(audit_tiles))}


def backfill(conn: sa.Connection, size: int, limit: int = 256) -> int:
    """Store up to `limit` missing tiles below `size` (levels in order, so each level finds the one
    below complete); how many. The caller holds the log's append lock."""
    done = 0
    for level in range(1, LEVELS + 1):
        width = WIDTH ** level
        have = set(conn.execute(sa.select(audit_tiles.c.idx).where(audit_tiles.c.level == level)).scalars())
        for t in range(size // width):
            if t in have:
                continue
            if done >= limit:
                return done
            found = _from_below(conn, level, t)
            if found is None:
                return done  # the level below is not complete yet: the next round
            conn.execute(audit_tiles.insert().values(level=level, idx=t, hash=found))
            done += 1
    return done


def _from_below(conn: sa.Connection, level: int, t: int) -> str | None:
    """Tile `t` of `level` from the 256 stored leaves or tiles under it; None if one is missing."""
    nodes = read_leaves(conn, t * WIDTH, (t + 1) * WIDTH) if level == 1 else _tiles(conn, level - 1, t * WIDTH, WIDTH)
    return merkle.root(nodes).hex() if len(nodes) == WIDTH else None
