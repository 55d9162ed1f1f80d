"""The evidence chain: hashing, and detection of edits, deletions and reordering."""

from __future__ import annotations

import dataclasses
import hashlib

from services.compliance.domain import (
    GENESIS_HASH,
    ChainVerifier,
    StoredEntry,
    canonical_entry,
    chain_hash,
)


def build_chain(n: int) -> list[StoredEntry]:
    entries = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        envelope = {"event_id": f"e{seq}", "type": "case.opened", "payload": {"n": seq}}
        body = canonical_entry(seq=seq, topic="cases.events", recorded_at="t", envelope=envelope)
        digest = chain_hash(prev_hash=prev, entry=body)
        entries.append(
            StoredEntry(seq, f"e{seq}", "cases.events", "case.opened", body, prev, digest)
        )
        prev = digest
    return entries


def test_hash_is_sha256_of_previous_hash_bytes_then_entry() -> None:
    body = b'{"x":1}'
    expected = hashlib.sha256(bytes(32) + body).hexdigest()
    assert chain_hash(prev_hash=GENESIS_HASH, entry=body) == expected


def test_an_intact_chain_verifies() -> None:
    verifier = ChainVerifier()
    assert verifier.feed(build_chain(50))
    assert verifier.ok
    assert verifier.checked == 50


def test_a_single_byte_edit_is_found_at_its_entry() -> None:
    chain = build_chain(10)
    edited = chain[6].body.replace(b'"n":7', b'"n":8')
    assert edited != chain[6].body
    chain[6] = dataclasses.replace(chain[6], body=edited)
    verifier = ChainVerifier()
    assert not verifier.feed(chain)
    assert verifier.broken_seq == 7
    assert verifier.checked == 6


def test_an_edited_column_outside_the_hash_is_found() -> None:
    chain = build_chain(5)
    chain[2] = dataclasses.replace(chain[2], event_type="payment.received")
    verifier = ChainVerifier()
    assert not verifier.feed(chain)
    assert verifier.broken_seq == 3
    assert "columns" in (verifier.problem or "")


def test_a_deleted_entry_is_found() -> None:
    chain = build_chain(5)
    del chain[3]
    verifier = ChainVerifier()
    assert not verifier.feed(chain)
    assert verifier.broken_seq == 4


def test_reordered_entries_are_found() -> None:
    chain = build_chain(5)
    chain[1], chain[2] = chain[2], chain[1]
    verifier = ChainVerifier()
    assert not verifier.feed(chain)
    assert verifier.broken_seq == 2


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    chain = build_chain(5)
    forged_body = chain[1].body.replace(b'"n":2', b'"n":9')
    forged_hash = chain_hash(prev_hash=chain[1].prev_hash, entry=forged_body)
    chain[1] = dataclasses.replace(chain[1], body=forged_body, entry_hash=forged_hash)
    verifier = ChainVerifier()
    assert not verifier.feed(chain)
    assert verifier.broken_seq == 3


def test_personal_data_is_kept_only_as_keyed_hashes() -> None:
    import json
    from typing import Any

    from services.compliance.domain import protect_personal_data

    envelope: dict[str, Any] = {
        "type": "case.opened",
        "payload": {
            "case_id": "c-1",
            "account_id": "LN-42",
            "risk_features": {"MonthlyIncome": 5400, "age": 37, "DebtRatio": None},
            "amount_outstanding": "100.00",
        },
    }
    protected = protect_personal_data(envelope, key=b"k1")
    text = json.dumps(protected)
    assert "LN-42" not in text
    assert "5400" not in text
    assert protected["payload"]["case_id"] == "c-1"  # not personal: kept
    assert protected["payload"]["amount_outstanding"] == "100.00"
    assert protected["payload"]["risk_features"]["DebtRatio"] is None
    assert protected["payload"]["account_id"].startswith("hmac-sha256:")
    # Same value, same key: same hash (provable); another key: unrelated.
    assert protect_personal_data(envelope, key=b"k1") == protected
    assert protect_personal_data(envelope, key=b"k2") != protected
    assert envelope["payload"]["account_id"] == "LN-42"  # the input is not modified
