"""RFC 6962 / RFC 9162 Merkle hashing against the Certificate Transparency test vectors, and
inclusion/consistency proofs checked by the RFC 9162 verification algorithms."""

from __future__ import annotations

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
