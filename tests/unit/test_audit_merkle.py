"""RFC 6962 Merkle trees: roots against a naive recursive MTH, the published 8-leaf reference tree,
every inclusion and consistency proof of small trees verified and their tampered variants refused,
proofs from a chunked subtree-root callback, and the compact range (append, root, persist, resume)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ostiary.audit.merkle import (
    EMPTY_ROOT,
    Tree,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    root,
    subtree_root_from_list,
    verify_consistency,
    verify_inclusion,
)

# The reference tree of RFC 6962 implementations, with its roots at sizes 1..8 and known proofs, as
# published in github.com/transparency-dev/merkle proof/verify_test.go (inherited from
# certificate-transparency-go). Proof indexes there are 1-based; here they are 0-based.
REF_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
REF_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
REF_INCLUSION = [  # (index, size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
REF_CONSISTENCY = [  # (old_size, new_size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def naive_mth(data: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 §2.1, over leaf data, recursive."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


DATA = [f"entry {i}".encode() for i in range(70)]
LEAVES = [leaf_hash(d) for d in DATA]
ROOTS = [naive_mth(DATA[:n]) for n in range(len(DATA) + 1)]


def flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ---------------------------------------------------------------- hashing and roots


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)
    # Domain separation: a leaf whose data looks like two hashes is not the node over them.
    assert leaf_hash(a + b) != node_hash(a, b)


def test_root_matches_naive_mth_for_sizes_0_to_70() -> None:
    for n in range(71):
        assert root(LEAVES[:n]) == ROOTS[n], n


def test_reference_tree_roots() -> None:
    for n in range(1, 9):
        assert root([leaf_hash(d) for d in REF_LEAVES[:n]]) == REF_ROOTS[n - 1], n
        assert naive_mth(REF_LEAVES[:n]) == REF_ROOTS[n - 1], n
    assert root([]) == EMPTY_ROOT


def test_reference_tree_proofs() -> None:
    leaves = [leaf_hash(d) for d in REF_LEAVES]
    for index, size, hexes in REF_INCLUSION:
        proof = [bytes.fromhex(h) for h in hexes]
        assert inclusion_proof(leaves, index, size) == proof, (index, size)
        assert verify_inclusion(leaves[index], index, size, proof, REF_ROOTS[size - 1])
    for old, new, hexes in REF_CONSISTENCY:
        proof = [bytes.fromhex(h) for h in hexes]
        assert consistency_proof(leaves, old, new) == proof, (old, new)
        assert verify_consistency(old, new, REF_ROOTS[old - 1], REF_ROOTS[new - 1], proof)


# ---------------------------------------------------------------- inclusion


def test_every_inclusion_proof_verifies_and_tampering_fails() -> None:
    for size in range(1, 41):
        r = ROOTS[size]
        proofs = [inclusion_proof(LEAVES, i, size) for i in range(size)]
        for i, proof in enumerate(proofs):
            leaf = LEAVES[i]
            assert len(proof) <= (size - 1).bit_length()
            assert verify_inclusion(leaf, i, size, proof, r), (i, size)
            assert not verify_inclusion(LEAVES[size], i, size, proof, r)  # a leaf not in the tree
            assert not verify_inclusion(flip(leaf), i, size, proof, r)
            assert not verify_inclusion(leaf, i, size, proof, flip(r))
            assert not verify_inclusion(leaf, i, size, proof, EMPTY_ROOT)
            for j in range(size):  # the same proof at any other index
                if j != i:
                    assert not verify_inclusion(leaf, j, size, proof, r), (i, j, size)
            for other in (size - 1, size + 1, size * 2):  # another size, against its true root
                if i < other < len(ROOTS):
                    assert not verify_inclusion(leaf, i, other, proof, ROOTS[other]), (i, size, other)
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = flip(bad[k])
                assert not verify_inclusion(leaf, i, size, bad, r)
            if proof:
                assert not verify_inclusion(leaf, i, size, proof[:-1], r)
                assert not verify_inclusion(leaf, i, size, proof[1:], r)
            assert not verify_inclusion(leaf, i, size, [*proof, r], r)
            assert not verify_inclusion(leaf, i, size, [r, *proof], r)


def test_verify_inclusion_rejects_malformed_input() -> None:
    proof = inclusion_proof(LEAVES, 3, 10)
    assert verify_inclusion(LEAVES[3], 3, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3], -1, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 10, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(LEAVES[3][:31], 3, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 3, 10, [*proof[:-1], b""], ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 3, 10, proof, ROOTS[10] + b"\x00")
    # A one-leaf tree: the root is the leaf hash, the proof is empty.
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 0, 1, [LEAVES[1]], LEAVES[0])


def test_inclusion_proof_argument_errors() -> None:
    with pytest.raises(ValueError, match="outside a tree of size"):
        inclusion_proof(LEAVES, 5, 5)
    with pytest.raises(ValueError, match="outside a tree of size"):
        inclusion_proof(LEAVES, -1)
    with pytest.raises(ValueError, match="exceeds"):
        inclusion_proof(LEAVES[:3], 0, 4)
    assert inclusion_proof(LEAVES[:9], 4) == inclusion_proof(LEAVES, 4, 9)


# ---------------------------------------------------------------- consistency


def test_every_consistency_proof_verifies_and_tampering_fails() -> None:
    for new in range(1, 41):
        for old in range(1, new + 1):
            proof = consistency_proof(LEAVES, old, new)
            r1, r2 = ROOTS[old], ROOTS[new]
            assert verify_consistency(old, new, r1, r2, proof), (old, new)
            assert not verify_consistency(old, new, flip(r1), r2, proof)
            assert not verify_consistency(old, new, r1, flip(r2), proof)
            if old == new:
                assert proof == []
                assert not verify_consistency(old, new, r1, r2, [r1])
                continue
            assert not verify_consistency(old, new, r2, r1, proof)  # swapped roots
            assert not verify_consistency(old, new, r1, r2, [])
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = flip(bad[k], 4)
                assert not verify_consistency(old, new, r1, r2, bad), (old, new, k)
            assert not verify_consistency(old, new, r1, r2, proof[:-1])
            assert not verify_consistency(old, new, r1, r2, [*proof, r2])
            assert not verify_consistency(old, new, r1, r2, [r1, *proof])
            assert not verify_consistency(old, new, r1, r2, [proof[0], *proof])
            # The same proof claimed for other sizes, against those sizes' true roots.
            for o, n in ((old - 1, new), (old + 1, new), (old, new + 1), (old, new - 1), (old, new * 2)):
                if 0 < o < n < len(ROOTS):
                    assert not verify_consistency(o, n, ROOTS[o], ROOTS[n], proof), (old, new, o, n)
            # Rewriting history: a different old tree of the same size is not consistent.
            forged = root([*LEAVES[: old - 1], leaf_hash(b"forged")])
            assert not verify_consistency(old, new, forged, r2, proof)


def test_consistency_trivial_cases() -> None:
    assert consistency_proof(LEAVES, 0, 10) == []
    assert verify_consistency(0, 10, EMPTY_ROOT, ROOTS[10], [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, ROOTS[1], [])
    assert not verify_consistency(0, 10, ROOTS[1], ROOTS[10], [])  # an empty tree has one root
    assert not verify_consistency(0, 10, EMPTY_ROOT, ROOTS[10], [ROOTS[1]])
    assert not verify_consistency(5, 4, ROOTS[5], ROOTS[4], [])  # time travel
    assert not verify_consistency(-1, 4, ROOTS[0], ROOTS[4], [])
    assert not verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])
    assert not verify_consistency(3, 5, ROOTS[3][:16], ROOTS[5], consistency_proof(LEAVES, 3, 5))
    with pytest.raises(ValueError, match="old_size <= new_size"):
        consistency_proof(LEAVES, 6, 5)
    with pytest.raises(ValueError, match="exceeds"):
        consistency_proof(LEAVES[:4], 2, 5)


# ---------------------------------------------------------------- proofs from a subtree-root callback


def test_proofs_from_a_chunked_subtree_root_callback() -> None:
    """A store computes each asked-for subtree root by streaming its leaves, never holding them all."""
    calls: list[tuple[int, int]] = []

    def stored_subtree_root(start: int, end: int) -> bytes:
        calls.append((start, end))
        tree = Tree()
        for chunk_start in range(start, end, 7):  # leaves read 7 at a time
            tree.extend(LEAVES[chunk_start : min(chunk_start + 7, end)])
        return tree.root()

    size = 70
    for i in range(size):
        calls.clear()
        proof = inclusion_proof_from(i, size, stored_subtree_root)
        assert proof == inclusion_proof(LEAVES, i, size)
        assert len(calls) == len(proof) <= 7
    for old in range(1, size + 1):
        calls.clear()
        proof = consistency_proof_from(old, size, stored_subtree_root)
        assert proof == consistency_proof(LEAVES, old, size)
        assert len(calls) == len(proof)
    from_list = subtree_root_from_list(LEAVES)
    assert from_list(3, 17) == root(LEAVES[3:17])


# ---------------------------------------------------------------- compact range


def test_tree_root_equals_root_at_every_size() -> None:
    tree = Tree()
    assert tree.size == 0 and tree.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, 1):
        tree.append(leaf)
        assert tree.size == n
        assert tree.root() == ROOTS[n], n
        assert len(tree.hashes()) == n.bit_count()  # O(log n) memory


def test_tree_survives_serialise_and_restore_at_every_size() -> None:
    for n in range(len(LEAVES) + 1):
        tree = Tree()
        tree.extend(LEAVES[:n])
        state = json.loads(json.dumps(tree.to_dict()))
        assert state["size"] == n
        resumed = Tree.from_dict(state)
        assert resumed == tree and resumed.root() == ROOTS[n]
        resumed.extend(LEAVES[n:])
        assert resumed.root() == ROOTS[-1]
        assert Tree.restore(tree.size, tree.hashes()) == tree


def test_tree_append_data_copy_and_equality() -> None:
    tree = Tree()
    assert tree.append_data(DATA[0]) == LEAVES[0]
    copy = tree.copy()
    copy.append(LEAVES[1])
    assert tree.size == 1 and copy.size == 2 and copy != tree
    assert copy.root() == ROOTS[2]
    assert "size=2" in repr(copy)


def test_tree_large_incremental_matches_root() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]
    tree = Tree()
    tree.extend(leaves)
    assert tree.root() == root(leaves)
    assert len(tree.hashes()) == 5000 .bit_count()


def test_tree_rejects_bad_input_and_state() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Tree().append(b"short")
    with pytest.raises(ValueError, match="has 2 subtree hashes, got 1"):
        Tree.restore(3, [LEAVES[0]])
    with pytest.raises(ValueError, match="non-negative"):
        Tree.restore(-1, [])
    with pytest.raises(ValueError, match="32 bytes"):
        Tree.restore(1, [b"x" * 31])
    with pytest.raises(ValueError, match="hex strings"):
        Tree.from_dict({"size": 1, "hashes": ["zz"]})
    with pytest.raises(ValueError, match="integer 'size'"):
        Tree.from_dict({"size": "1", "hashes": []})
    with pytest.raises(ValueError, match="has 1 subtree hashes"):
        Tree.from_dict({"size": 4, "hashes": []})
