"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs. Pure.

The evidence log's entries are the leaves (in sequence order); a tree head (size, root) can be
published or anchored outside the system, and anyone can check that an entry is in it, or
that a later head extends an earlier one, with a handful of hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from operator import methodcaller


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


# --- many hashes at once: the loops below run in C (map over hashlib's functions), with no
# Python call per hash; verifying a log is mostly hashing.

_digest = methodcaller("digest")


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """`leaf_hash` of each entry, in order."""
    return list(map(_digest, map(hashlib.sha256, map(b"\x00".__add__, entries))))


def parent_level(nodes: Sequence[bytes]) -> list[bytes]:
    """`node_hash` of each pair (nodes[2i], nodes[2i + 1]); an odd last node is left out (it
    is not the root of a perfect subtree)."""
    end = len(nodes) // 2 * 2
    return list(
        map(
            _digest,
            map(
                hashlib.sha256,
                map(bytes.__add__, map(b"\x01".__add__, nodes[0:end:2]), nodes[1:end:2]),
            ),
        )
    )


def nodes_appended(
    start: int, leaves: Sequence[bytes], frontier_hashes: Sequence[bytes]
) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """`nodes_completed` of leaves start, start + 1, ... appended in that order (what a batch
    of appends stores), given the hashes of `frontier(start)`; also returns the hashes of
    `frontier(start + len(leaves))`.

    The frontier, smallest subtree last, is a stack: a leaf at an odd index completes the
    subtree on top of it, and so on up while the index stays odd."""
    stack = list(frontier_hashes)
    out: list[tuple[int, int, bytes]] = []
    for index, leaf in enumerate(leaves, start):
        out.append((0, index, leaf))
        level, at, current = 0, index, leaf
        while at & 1:
            current = node_hash(stack.pop(), current)
            at >>= 1
            level += 1
            out.append((level, at, current))
        stack.append(current)
    return out, stack


def frontier(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees that make up the first `size` leaves, largest first: every stored
    node an append at index `size` (or later, before those complete) combines with."""
    return [
        (level, (size >> level) - 1)
        for level in range(size.bit_length() - 1, -1, -1)
        if size >> level & 1
    ]


class PerfectNodes:
    """Recompute the perfect-subtree nodes of leaves fed in order from leaf `start`.

    Leaves are folded a block of 2**block_level at a time (`start` must be block-aligned),
    keeping the root of each full block and the `wanted` nodes below block level; nodes at or
    above block level are folded from the block roots (`combined_reader`). Parts of a log
    folded separately (one per process) combine by concatenating their block roots and
    nodes."""

    def __init__(
        self, *, start: int, block_level: int, wanted: Iterable[tuple[int, int]] = ()
    ) -> None:
        if start % (1 << block_level):
            raise ValueError(f"start {start} is not a multiple of 2**{block_level}")
        self.block_level = block_level
        self.first_block = start >> block_level
        self.block_roots: list[bytes] = []
        self.nodes: dict[tuple[int, int], bytes] = {}
        self._wanted: dict[int, list[tuple[int, int]]] = {}
        for level, index in wanted:
            if level < block_level:
                block = index >> (block_level - level)
                self._wanted.setdefault(block, []).append((level, index))
        self._pending: list[bytes] = []

    def add(self, leaves: Sequence[bytes]) -> None:
        """Feed the next leaves (any number)."""
        self._pending.extend(leaves)
        size = 1 << self.block_level
        if len(self._pending) >= size:
            full = len(self._pending) // size * size
            for at in range(0, full, size):
                self._fold(self._pending[at : at + size])
            del self._pending[:full]

    def finish(self) -> None:
        """Fold the last, partial block (its perfect subtrees only)."""
        if self._pending:
            self._fold(self._pending)
            self._pending = []

    def _fold(self, leaves: list[bytes]) -> None:
        block = self.first_block + len(self.block_roots)
        wanted = self._wanted.get(block, [])
        level: list[bytes] = leaves
        for height in range(self.block_level + 1):
            first = block << (self.block_level - height)
            for wanted_level, index in wanted:
                if wanted_level == height and index - first < len(level):
                    self.nodes[(wanted_level, index)] = level[index - first]
            if height == self.block_level:
                if len(level) == 1:  # a full block
                    self.block_roots.append(level[0])
                break
            level = parent_level(level)


def combined_reader(
    *, block_level: int, block_roots: Sequence[bytes], nodes: dict[tuple[int, int], bytes]
) -> NodeReader:
    """A NodeReader over the nodes PerfectNodes recomputed (block roots of the whole log from
    block 0, wanted nodes below block level); a node it was not asked for raises KeyError."""

    def read(level: int, index: int) -> bytes:
        if level < block_level:
            return nodes[(level, index)]
        span = 1 << (level - block_level)
        part = list(block_roots[index * span : (index + 1) * span])
        if len(part) != span:
            raise KeyError((level, index))
        while len(part) > 1:
            part = parent_level(part)
        return part[0]

    return read
