"""RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, tree roots, inclusion and consistency
proofs and their verification, and an incremental compact range (`Tree`).

Pure functions over 32-byte SHA-256 hashes; no I/O. Leaves are hashed with a 0x00 prefix and interior
nodes with 0x01 (RFC 6962 §2.1), so a leaf can never be passed off as an interior node. The tree over
n leaves splits at the largest power of two below n, so it is defined for every size and the roots
of all earlier sizes stay provable against later ones (consistency proofs).

Proofs can be built two ways: from an in-memory list of leaf hashes (`inclusion_proof`,
`consistency_proof`), or from a callback `subtree_root(start, end) -> MTH(D[start:end])`
(`inclusion_proof_from`, `consistency_proof_from`) so that a store can compute each subtree root from
its leaves in chunks (e.g. by streaming them through a `Tree`) without loading the whole log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SubtreeRoot",
    "Tree",
    "consistency_proof",
    "consistency_proof_from",
    "inclusion_proof",
    "inclusion_proof_from",
    "leaf_hash",
    "node_hash",
    "root",
    "subtree_root_from_list",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# MTH({}) = SHA-256() (RFC 6962 §2.1): the root of the empty tree.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

# subtree_root(start, end) must return MTH(D[start:end]) for 0 <= start < end <= size.
SubtreeRoot = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): where RFC 6962 splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves (RFC 6962 §2.1).

    Computed level by level, carrying an odd last node up unchanged: this builds exactly the tree
    that splits at the largest power of two below n, without recursion or slicing.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def subtree_root_from_list(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    """A `SubtreeRoot` over an in-memory list of leaf hashes."""

    def subtree_root(start: int, end: int) -> bytes:
        return root(leaf_hashes[start:end])

    return subtree_root


def inclusion_proof_from(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PATH(index, D[size]) (RFC 6962 §2.1.1), asking `subtree_root` for each sibling subtree.

    The proof lists siblings from the leaf up to the root; it makes ceil(log2(size)) calls at most.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; the RFC's recursion appends each sibling after the deeper part of the
    # path, so the siblings met on the way down are reversed at the end.
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof_from(old_size: int, new_size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 6962 §2.1.2), asking `subtree_root` for each subtree.

    Empty when old_size is 0 or equal to new_size: there is nothing to prove.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size} and {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), unrolled: `m` counts old leaves inside [lo, hi); `whole_old` is the
    # RFC's b, true while the subtree still starts at 0 so that its root is the old root itself
    # (which the verifier already has and need not be sent).
    lo, hi, m, whole_old = 0, new_size, old_size, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            proof.append(subtree_root(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_root(lo, lo + k))
            lo += k
            m -= k
            whole_old = False
    if not whole_old:
        proof.append(subtree_root(lo, hi))
    proof.reverse()
    return proof


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[size]) over the first `size` (default: all) of `leaf_hashes`."""
    size = len(leaf_hashes) if size is None else size
    if size > len(leaf_hashes):
        raise ValueError(f"tree size {size} exceeds the {len(leaf_hashes)} leaves given")
    return inclusion_proof_from(index, size, subtree_root_from_list(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """PROOF(old_size, D[new_size]) over the first `new_size` (default: all) of `leaf_hashes`."""
    new_size = len(leaf_hashes) if new_size is None else new_size
    if new_size > len(leaf_hashes):
        raise ValueError(f"tree size {new_size} exceeds the {len(leaf_hashes)} leaves given")
    return consistency_proof_from(old_size, new_size, subtree_root_from_list(leaf_hashes))


def _all_hashes(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf hash at `index` in the tree of `size` with `root`.

    The algorithm of RFC 9162 §2.1.3.2; every malformed input is simply a failed proof.
    """
    if not 0 <= index < size or not _all_hashes(leaf_hash, root, *proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False  # proof longer than the path to the root
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A right-edge node with no right sibling moves up unchanged: skip those levels.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree (`old_size`, `old_root`) is a prefix of (`new_size`, `new_root`).

    The algorithm of RFC 9162 §2.1.4.2 for 0 < old_size < new_size. The trivial cases need an empty
    proof: equal sizes need equal roots, and an empty old tree needs the empty-tree root (stricter
    than ignoring it, and any honest log produces exactly that).
    """
    if not 0 <= old_size <= new_size or not _all_hashes(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the first node of the path.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Tree:
    """An append-only Merkle tree kept as a compact range: the roots of its perfect subtrees.

    A tree of n leaves is the perfect subtrees given by the set bits of n, largest (leftmost) first,
    so it takes popcount(n) <= log2(n) + 1 hashes whatever n is. Appending a leaf merges the equal-
    sized subtrees at the right edge (like a binary counter's carries): O(1) hashes amortised.
    `root()` folds the subtrees right to left, which is exactly MTH since RFC 6962 splits at the
    largest power of two. `to_dict()`/`from_dict()` persist the state so a writer can resume.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf, given by its leaf hash (see `leaf_hash`)."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        h, n, stack = leaf_hash, self._size, self._stack
        while n & 1:
            h = node_hash(stack.pop(), h)
            n >>= 1
        stack.append(h)
        self._size += 1

    def append_data(self, data: bytes) -> bytes:
        """Hash `data` as a leaf, append it and return its leaf hash."""
        h = leaf_hash(data)
        self.append(h)
        return h

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = node_hash(left, h)
        return h

    def hashes(self) -> list[bytes]:
        """The perfect subtree roots, largest first."""
        return list(self._stack)

    def copy(self) -> Tree:
        return Tree.restore(self._size, self._stack)

    @classmethod
    def restore(cls, size: int, hashes: Sequence[bytes]) -> Tree:
        """The tree of `size` leaves from its subtree roots (as returned by `hashes()`)."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"tree size must be a non-negative integer, got {size!r}")
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} subtree hashes, got {len(hashes)}")
        if not _all_hashes(*hashes):
            raise ValueError(f"subtree hashes are {HASH_SIZE} bytes each")
        tree = cls()
        tree._size = size
        tree._stack = list(hashes)
        return tree

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state: {"size": n, "hashes": [hex, ...]}."""
        return {"size": self._size, "hashes": [h.hex() for h in self._stack]}

    @classmethod
    def from_dict(cls, state: Mapping[str, object]) -> Tree:
        """The inverse of `to_dict`, validating the state."""
        size, hashes = state.get("size"), state.get("hashes")
        if not isinstance(size, int) or not isinstance(hashes, list):
            # Malformed persisted data, not a programming error: a ValueError like every other check.
            raise ValueError("tree state needs an integer 'size' and a list 'hashes'")  # noqa: TRY004
        try:
            raw = [bytes.fromhex(h) for h in hashes]
        except (TypeError, ValueError) as exc:
            raise ValueError("tree state 'hashes' must be hex strings") from exc
        return cls.restore(size, raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tree):
            return NotImplemented
        return self._size == other._size and self._stack == other._stack

    __hash__ = None  # type: ignore[assignment]  # mutable: equality by value, not hashable

    def __repr__(self) -> str:
        return f"Tree(size={self._size}, root={self.root().hex()})"
