"""RFC 6962 / RFC 9162 Merkle hashing against the Certificate Transparency test vectors, and
inclusion/consistency proofs checked by the RFC 9162 verification algorithms."""

from __future__ import annotations

from functools import partial

import pytest

from services.compliance import merkle
from services.compliance.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves of RFC 6962's reference tests and the root of each prefix.
LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
HASHES = [leaf_hash(x) for x in LEAVES]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc_6962_vectors(size: int) -> None:
    assert root(HASHES[:size]).hex() == ROOTS[size - 1]


def test_empty_tree() -> None:
    assert root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def many(n: int) -> list[bytes]:
    return [leaf_hash(f"entry-{i}".encode()) for i in range(n)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 64, 70])
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(size: int) -> None:
    leaves = many(size)
    head = root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert len(proof) <= size.bit_length()
        assert verify_inclusion(
            leaf=leaves[index], index=index, tree_size=size, proof=proof, expected_root=head
        )
        other = leaves[(index + 1) % size] if size > 1 else leaf_hash(b"forged")
        assert not verify_inclusion(
            leaf=other if other != leaves[index] else leaf_hash(b"forged"),
            index=index,
            tree_size=size,
            proof=proof,
            expected_root=head,
        )
        if index ^ 1 < size:  # the same leaf claimed at its sibling's place
            assert not verify_inclusion(
                leaf=leaves[index],
                index=index ^ 1,
                tree_size=size,
                proof=proof,
                expected_root=head,
            )


@pytest.mark.parametrize("second", [2, 3, 7, 8, 9, 16, 33, 70])
def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not(second: int) -> None:
    leaves = many(second)
    second_root = root(leaves)
    for first in range(1, second + 1):
        proof = consistency_proof(first, leaves)
        first_root = root(leaves[:first])
        assert verify_consistency(
            first_size=first,
            second_size=second,
            first_root=first_root,
            second_root=second_root,
            proof=proof,
        )
        rewritten = [*leaves[: first - 1], leaf_hash(b"rewritten")]
        if first < second:
            assert not verify_consistency(
                first_size=first,
                second_size=second,
                first_root=root(rewritten),
                second_root=second_root,
                proof=proof,
            )


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(3, many(3))
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, many(3))


def stored_tree(n: int) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    """Leaves 0..n-1 appended one by one, keeping only the nodes each append completes."""
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]
    nodes: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(leaves):
        assert set(merkle.siblings_needed(index)) <= set(nodes)
        for level, at, value in merkle.nodes_completed(index, leaf, lambda lv, i: nodes[(lv, i)]):
            nodes[(level, at)] = value
    return leaves, nodes


def test_stored_nodes_give_the_same_heads_and_proofs_as_the_whole_log() -> None:
    leaves, nodes = stored_tree(70)
    assert len(nodes) < 2 * len(leaves)  # about 2n nodes, never more

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    for size in range(1, 71):
        assert merkle.range_root(read, 0, size) == merkle.root(leaves[:size])
        for index in range(size):
            path = merkle.inclusion_path(read, index, size)
            assert path == merkle.inclusion_proof(index, leaves[:size])
        for first in range(1, size + 1):
            assert merkle.consistency_path(read, first, size) == merkle.consistency_proof(
                first, leaves[:size]
            )


def test_a_head_or_proof_reads_a_logarithmic_number_of_nodes() -> None:
    size = 1_000_003
    head = merkle.nodes_read(lambda read: merkle.range_root(read, 0, size))
    proof = merkle.nodes_read(lambda read: merkle.inclusion_path(read, 777_777, size))
    consistency = merkle.nodes_read(lambda read: merkle.consistency_path(read, 999_001, size))
    assert len(head) <= 20
    assert len(proof) <= 2 * 20
    assert len(consistency) <= 2 * 20


def test_stored_node_proofs_verify() -> None:
    leaves, nodes = stored_tree(37)

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    head = merkle.range_root(read, 0, 37)
    assert merkle.verify_inclusion(
        leaf=leaves[20],
        index=20,
        tree_size=37,
        proof=merkle.inclusion_path(read, 20, 37),
        expected_root=head,
    )
    assert merkle.verify_consistency(
        first_size=13,
        second_size=37,
        first_root=merkle.range_root(read, 0, 13),
        second_root=head,
        proof=merkle.consistency_path(read, 13, 37),
    )


# --- many hashes at once, batches of appends, and trees folded in parts -------------------


def test_batch_hashing_matches_one_at_a_time() -> None:
    entries = [f"entry {i}".encode() for i in range(9)]
    assert merkle.leaf_hashes(entries) == [leaf_hash(e) for e in entries]
    nodes = many(9)
    assert merkle.parent_level(nodes) == [
        merkle.node_hash(nodes[i], nodes[i + 1]) for i in range(0, 8, 2)
    ]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 8, 13, 64, 100])
def test_the_frontier_is_the_perfect_subtrees_of_the_first_leaves(size: int) -> None:
    frontier = merkle.frontier(size)
    covered = [i for level, index in frontier for i in range(index << level, (index + 1) << level)]
    assert covered == list(range(size))
    assert [level for level, _ in frontier] == sorted({lv for lv, _ in frontier}, reverse=True)


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 16, 70])
def test_appending_in_batches_stores_the_nodes_of_appending_one_by_one(batch: int) -> None:
    leaves, expected = stored_tree(70)
    stored: dict[tuple[int, int], bytes] = {}
    frontier: list[bytes] = []
    for start in range(0, 70, batch):
        assert frontier == [stored[key] for key in merkle.frontier(start)]
        nodes, frontier = merkle.nodes_appended(start, leaves[start : start + batch], frontier)
        for level, index, value in nodes:
            assert (level, index) not in stored  # each node is written once
            stored[(level, index)] = value
    assert stored == expected


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9, 16, 17, 31, 33, 64, 70])
@pytest.mark.parametrize("cuts", [(0,), (0, 8), (0, 4, 12), (0, 16, 32, 48)])
def test_a_tree_folded_in_parts_gives_every_root_and_node(size: int, cuts: tuple[int, ...]) -> None:
    leaves, stored = stored_tree(size)
    wanted: set[tuple[int, int]] = set().union(
        *(
            merkle.nodes_read(partial(merkle.range_root, start=0, size=s))
            for s in range(1, size + 1)
        )
    )
    roots: list[bytes] = []
    found: dict[tuple[int, int], bytes] = {}
    starts = [cut for cut in cuts if cut < size] or [0]
    for start, end in zip(starts, [*starts[1:], size], strict=True):
        part = merkle.PerfectNodes(start=start, block_level=2, wanted=wanted)
        for at in range(start, end, 3):  # fed in uneven pieces
            part.add(leaves[at : min(at + 3, end)])
        part.finish()
        roots.extend(part.block_roots)
        found.update(part.nodes)
    read = merkle.combined_reader(block_level=2, block_roots=roots, nodes=found)
    for s in range(1, size + 1):
        assert merkle.range_root(read, 0, s) == merkle.root(leaves[:s])
    for level, index in wanted:
        assert read(level, index) == stored[(level, index)]


def test_a_misaligned_part_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple"):
        merkle.PerfectNodes(start=6, block_level=2)
