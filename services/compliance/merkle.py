"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs. Pure.

The evidence log's entries are the leaves (in sequence order); a tree head (size, root) can be
published or anchored outside the system, and anyone can check that an entry is in it, or
that a later head extends an earlier one, with a handful of hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes; the empty tree hashes the empty string."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Bottom-up: pair neighbours; an odd last node moves up unchanged (same tree as RFC 6962).
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def verify_inclusion(
    *, leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def consistency_proof(first_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of the first `first_size` leaves is a prefix."""
    n = len(leaves)
    if not 0 < first_size <= n:
        raise ValueError(f"no consistency proof from size {first_size} to {n}")
    return _subproof(first_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_consistency(
    *,
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if first_size == second_size:
        return not proof and first_root == second_root
    if not 0 < first_size < second_size or not proof:
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # a power of two: the first root starts the path
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
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
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# --- the same tree from stored nodes: O(log n) hashes read per head or proof -------------------
#
# A node (level, index) is the root of the perfect subtree over leaves
# [index * 2**level, (index + 1) * 2**level); level 0 holds the leaf hashes. Every subtree the
# RFC 6962 recursion visits starts at a multiple of the next power of two above its size, so
# its root folds from at most log2(n) perfect nodes, and a head or proof never reads the log.

NodeReader = Callable[[int, int], bytes]


def range_root(node: NodeReader, start: int, size: int) -> bytes:
    """MTH(D[start:start + size]) from perfect-subtree nodes (`start` aligned as above)."""
    if size == 0:
        return hashlib.sha256(b"").digest()
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _split(size)
    return node_hash(range_root(node, start, k), range_root(node, start + k, size - k))


def inclusion_path(node: NodeReader, index: int, size: int, start: int = 0) -> list[bytes]:
    """PATH(index, D[size]) from stored nodes; equal to `inclusion_proof`."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    if size == 1:
        return []
    k = _split(size)
    if index < k:
        return [*inclusion_path(node, index, k, start), range_root(node, start + k, size - k)]
    return [*inclusion_path(node, index - k, size - k, start + k), range_root(node, start, k)]


def consistency_path(node: NodeReader, first_size: int, size: int) -> list[bytes]:
    """PROOF(first_size, D[size]) from stored nodes; equal to `consistency_proof`."""
    if not 0 < first_size <= size:
        raise ValueError(f"no consistency proof from size {first_size} to {size}")
    return _node_subproof(node, first_size, size, 0, True)


def _node_subproof(node: NodeReader, m: int, n: int, start: int, complete: bool) -> list[bytes]:
    if m == n:
        return [] if complete else [range_root(node, start, n)]
    k = _split(n)
    if m <= k:
        return [*_node_subproof(node, m, k, start, complete), range_root(node, start + k, n - k)]
    return [*_node_subproof(node, m - k, n - k, start + k, False), range_root(node, start, k)]


def siblings_needed(index: int) -> list[tuple[int, int]]:
    """The stored nodes appending leaf `index` combines with: one per perfect subtree it
    completes."""
    needed = []
    level = 0
    while index & 1:
        needed.append((level, index - 1))
        index >>= 1
        level += 1
    return needed


def nodes_completed(index: int, leaf: bytes, node: NodeReader) -> list[tuple[int, int, bytes]]:
    """(level, index, hash) of the leaf and of every perfect subtree appending it completes."""
    out = [(0, index, leaf)]
    level, at, current = 0, index, leaf
    while at & 1:
        current = node_hash(node(level, at - 1), current)
        at >>= 1
        level += 1
        out.append((level, at, current))
    return out


def nodes_read(compute: Callable[[NodeReader], object]) -> set[tuple[int, int]]:
    """Which nodes `compute` reads (its path never depends on the hash values)."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(32)

    compute(record)
    return wanted
