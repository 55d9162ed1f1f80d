"""The evidence chain: hashing, and detection of edits, deletions and reordering, by the
reference verifier and by the fast paths (batch bodies, chunk checks, parts in processes)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.compliance import domain
from services.compliance.domain import (
    GENESIS_HASH,
    ChainVerifier,
    StoredEntry,
    canonical_entry,
    chain_hash,
)
from shared.contracts import Envelope, canonical_json


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


# --- the batch append path and the fast verification path ---------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Keys that matter to the fast paths, mixed with arbitrary text.
tricky_keys = st.sampled_from(
    ["name", "phone", "event_id", "type", "seq", "topic", "version", '"type":', "x,"]
) | st.text(max_size=8)
payloads = st.dictionaries(tricky_keys, json_values, max_size=5)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_the_cached_encoder_writes_what_canonical_json_writes(value: Any) -> None:
    assert domain._CANONICAL.encode(value).encode() == canonical_json(value)


def envelope_dict(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    envelope = Envelope(
        type=fields.get("type", "case.opened"),
        version=1,
        producer="cases",
        key=fields.get("key", "case-1"),
        correlation_id=fields.get("correlation_id", "c"),
        causation_id=fields.get("causation_id"),
        actor=fields.get("actor"),
        tenant=fields.get("tenant", "default"),
        payload=payload,
    )
    return envelope.model_dump(mode="json")


@settings(max_examples=200, deadline=None)
@given(
    payload=payloads,
    topic=st.text(min_size=1),
    recorded_at=st.text(),
    seq=st.integers(min_value=1, max_value=2**62),
    causation=st.none() | st.text(max_size=200),  # the envelope allows 200
)
def test_batch_bodies_are_the_canonical_entry_byte_for_byte(
    payload: dict[str, Any], topic: str, recorded_at: str, seq: int, causation: str | None
) -> None:
    envelope = envelope_dict(payload, causation_id=causation)
    protected = domain.protected_envelope_json(envelope, key=b"k")
    assert protected == canonical_json(domain.protect_personal_data(envelope, key=b"k"))
    (body,) = domain.canonical_entries(first_seq=seq, entries=[(topic, recorded_at, protected)])
    assert body == domain.canonical_entry(
        seq=seq,
        topic=topic,
        recorded_at=recorded_at,
        envelope=domain.protect_personal_data(envelope, key=b"k"),
    )


def test_personal_fields_are_hashed_wherever_they_are() -> None:
    envelope = envelope_dict(
        {"debtor": {"contacts": [{"phone": "+8613800000000"}]}, "note": '"name": in a string'}
    )
    text = domain.protected_envelope_json(envelope, key=b"k").decode()
    assert "+8613800000000" not in text
    assert '"phone":"hmac-sha256:' in text
    assert '"note":"\\"name\\": in a string"' in text  # a lookalike in a string is kept


def test_the_fast_column_check_relies_on_the_envelope_keys_it_was_proved_for() -> None:
    """columns_agree's proof: before event_id the envelope holds only actor, causation_id and
    correlation_id (null or strings), after type only version (a number). A new field
    breaks this test first: re-check the proof (a wrong guess is unsound, not only slow)."""
    fields = sorted(Envelope.model_fields)
    assert fields[: fields.index("event_id")] == ["actor", "causation_id", "correlation_id"]
    assert fields[fields.index("type") :] == ["type", "version"]
    # The tenant's fragment is found as the key right before type.
    assert fields[fields.index("type") - 1] == "tenant"


def test_an_actor_that_looks_like_a_column_does_not_fool_the_fast_column_check() -> None:
    envelope = envelope_dict({"n": 1}, actor='admin:x,"event_id":"forged","type":"a.b"')
    body = canonical_entry(seq=1, topic="t", recorded_at="r", envelope=envelope)
    event_id = envelope["event_id"]
    assert domain.columns_agree([1], [event_id], ["t"], ["case.opened"], [body], ["default"])
    assert not domain.columns_agree([1], ["forged"], ["t"], ["case.opened"], [body], ["default"])


def canonical_rows(n: int, payload_of: Any = None) -> list[domain.Row]:
    rows: list[domain.Row] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        payload = payload_of(seq) if payload_of else {"n": seq}
        tenant = "acme" if seq % 2 else "globex"
        envelope = envelope_dict(payload, key=f"case-{seq % 3}", tenant=tenant)
        body = canonical_entry(seq=seq, topic="cases.events", recorded_at="t", envelope=envelope)
        digest = chain_hash(prev_hash=prev, entry=body)
        event_id = envelope["event_id"]
        rows.append((seq, event_id, "cases.events", "case.opened", body, prev, digest, tenant))
        prev = digest
    return rows


def slow_verdict(rows: list[domain.Row]) -> tuple[int | None, str | None, int]:
    verifier = ChainVerifier()
    verifier.feed(StoredEntry(*row) for row in rows)
    return verifier.broken_seq, verifier.problem, verifier.checked


def fast_verdict(rows: list[domain.Row], chunk: int = 4) -> tuple[int | None, str | None, int]:
    verifier = ChainVerifier()
    for at in range(0, len(rows), chunk):
        if not verifier.feed_rows(rows[at : at + chunk]):
            break
    return verifier.broken_seq, verifier.problem, verifier.checked


def test_an_intact_chain_passes_the_fast_path_without_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = canonical_rows(30)

    def no_parsing(_: object) -> None:
        raise AssertionError("the fast path parsed a body")

    monkeypatch.setattr(json, "loads", no_parsing)  # the module domain parses with
    assert fast_verdict(rows, chunk=7) == (None, None, 30)


@pytest.mark.parametrize("seq", [1, 4, 5, 9])
def test_every_single_byte_edit_is_found_at_its_entry_by_the_fast_path(seq: int) -> None:
    rows = canonical_rows(9)
    body = rows[seq - 1][4]
    for at in range(len(body)):
        for replacement in {(body[at] + 1) % 256, ord(" ")} - {body[at]}:
            edited = list(rows)
            changed = body[:at] + bytes([replacement]) + body[at + 1 :]
            edited[seq - 1] = (*rows[seq - 1][:4], changed, *rows[seq - 1][5:])
            verdict = fast_verdict(edited)
            assert verdict == slow_verdict(edited)
            assert verdict[0] == seq, (at, replacement)


def column_edits(row: domain.Row) -> list[tuple[int, Any]]:
    """(column, value) edits of the indexed columns, lookalikes included."""
    _, event_id, topic, event_type = row[:4]
    tenant = row[7]
    return [
        (7, "default"),  # the column a listing filters by: another tenant's view
        (7, tenant[:-1]),
        (7, "pay-tenant"),  # a value the payload holds under "tenant"
        (1, event_id[:-1]),
        (1, event_id + "0"),
        (1, event_id.upper()),
        (1, "payload-event"),  # a value the payload holds under "event_id"
        (2, topic[:-1]),
        (2, topic + "s"),
        (2, topic.replace(".", '"')),
        (3, event_type[:-1]),
        (3, event_type + "d"),
        (3, "payment.received"),
        (3, "nested.type"),  # a value the payload holds under "type"
    ]


def test_every_column_edit_is_found_by_the_fast_path_as_by_parsing() -> None:
    rows = canonical_rows(
        6,
        payload_of=lambda n: {
            "n": n,
            "cause": {"event_id": "payload-event", "type": "nested.type", "topic": "t"},
            "tenant": "pay-tenant",
            "type": "nested.type",
        },
    )
    for index in range(len(rows)):
        for column, value in column_edits(rows[index]):
            edited = list(rows)
            edited[index] = (*rows[index][:column], value, *rows[index][column + 1 :])
            verdict = fast_verdict(edited)
            assert verdict == slow_verdict(edited)
            assert verdict[0] == index + 1
            assert "columns" in (verdict[1] or "")


@settings(max_examples=300, deadline=None)
@given(
    payload=payloads,
    topic=st.text(min_size=1),
    event_type=st.sampled_from(["case.opened", "payment.received"]),
    column_topic=st.text(min_size=1),
    column_type=st.text(min_size=1),
    column_event_id=st.text(),
    tenant=st.sampled_from(["default", "acme", "a-b_c"]),
    column_tenant=st.text(),
    use_real=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
)
def test_the_fast_column_check_agrees_with_parsing(
    payload: dict[str, Any],
    topic: str,
    event_type: str,
    column_topic: str,
    column_type: str,
    column_event_id: str,
    tenant: str,
    column_tenant: str,
    use_real: tuple[bool, bool, bool, bool],
) -> None:
    envelope = envelope_dict(payload, type=event_type, tenant=tenant)
    body = canonical_entry(seq=3, topic=topic, recorded_at="r", envelope=envelope)
    topic_value = topic if use_real[0] else column_topic
    type_value = event_type if use_real[1] else column_type
    id_value = envelope["event_id"] if use_real[2] else column_event_id
    tenant_value = tenant if use_real[3] else column_tenant
    parsed = json.loads(body)
    expected = (
        parsed["topic"] == topic_value
        and parsed["envelope"]["type"] == type_value
        and parsed["envelope"]["event_id"] == id_value
        and parsed["envelope"]["tenant"] == tenant_value
    )
    agree = domain.columns_agree(
        [3], [id_value], [topic_value], [type_value], [body], [tenant_value]
    )
    assert agree == expected


def test_an_entry_logged_before_tenants_is_checked_as_default() -> None:
    """Bodies written before the envelope had a tenant: the fast check declines, parsing
    reads a missing tenant as "default", and any other column value is tampering."""
    envelope = envelope_dict({"tenant": "acme", "type": "case.opened", "version": 1})
    del envelope["tenant"]
    body = canonical_entry(seq=1, topic="t", recorded_at="r", envelope=envelope)
    digest = chain_hash(prev_hash=GENESIS_HASH, entry=body)
    row = (1, envelope["event_id"], "t", "case.opened", body, GENESIS_HASH, digest, "default")
    assert not domain.columns_agree([1], [row[1]], ["t"], ["case.opened"], [body], ["acme"])
    assert fast_verdict([row]) == (None, None, 1)
    moved = (*row[:7], "acme")
    assert fast_verdict([moved])[0] == 1
    assert slow_verdict([moved])[0] == 1


def test_a_column_of_the_wrong_type_falls_back_to_the_entry_by_entry_check() -> None:
    rows = canonical_rows(3)
    rows[1] = (*rows[1][:1], 12345, *rows[1][2:])  # type: ignore[assignment]
    assert fast_verdict(rows)[0] == 2


def tampered(rows: list[domain.Row], tamper: str, index: int) -> list[domain.Row]:
    """`rows` after one kind of tampering with the entry at `index`, in seq order (as
    "ORDER BY seq" reads them)."""
    rows = list(rows)
    row = rows[index]
    if tamper == "delete":
        del rows[index]
    elif tamper == "reorder" and index + 1 < len(rows):  # two entries swap places
        after = rows[index + 1]
        rows[index], rows[index + 1] = (row[0], *after[1:]), (after[0], *row[1:])
    elif tamper == "prev":
        rows[index] = (*row[:5], "ab" * 32, row[6], row[7])
    elif tamper == "hash":
        rows[index] = (*row[:6], row[5], row[7])
    elif tamper == "rehash":
        body = row[4].replace(b'"n":', b'"n": ')
        rehashed = chain_hash(prev_hash=row[5], entry=body)
        rows[index] = (*row[:4], body, row[5], rehashed, row[7])
    elif tamper == "seq":
        rows[index] = (99, *row[1:])
    return sorted(rows, key=lambda r: r[0])


@pytest.mark.parametrize("tamper", ["none", "delete", "reorder", "prev", "hash", "rehash", "seq"])
@pytest.mark.parametrize("at", [1, 4, 5, 8, 9, 12])
def test_a_log_verified_in_parts_gives_the_verdict_of_one_pass(
    tamper: str, at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain, "BLOCK_LEVEL", 2)  # parts of 4 entries: breaks on the seams
    stored = tampered(canonical_rows(12), tamper, at - 1)
    expected = slow_verdict(stored)
    for cut in ([0, 4, 8], [0, 8], [0]):
        parts = []
        for start, end in zip(cut, [*cut[1:], None], strict=True):
            # What a part reads: "seq >= start + 1 ORDER BY seq LIMIT end - start".
            mine = [row for row in stored if row[0] >= start + 1]
            mine = mine if end is None else mine[: end - start]
            chunks = [mine[i : i + 3] for i in range(0, len(mine), 3)]
            parts.append(domain.verify_range(chunks, first_seq=start + 1))
        verifier, _ = domain.combine_ranges(parts)
        assert (verifier.broken_seq, verifier.problem, verifier.checked) == expected, cut
