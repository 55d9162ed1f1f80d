"""Compliance use cases: append to the evidence chain, read it, verify it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.compliance import domain, merkle, signing
from services.compliance.models import AuditEntry, ChainHead, Checkpoint, MerkleNode
from services.compliance.schemas import (
    AuditEntries,
    AuditEntryOut,
    ChainVerification,
    CheckpointOut,
    ConsistencyProof,
    InclusionProof,
    TreeHead,
)
from shared.contracts import CheckpointIssued, Envelope, build_envelope
from shared.contracts.topics import COMPLIANCE_EVENTS
from shared.http import DomainError, NotFound
from shared.outbox import enqueue_event

HEAD_ID = 1
_HEAD_LOCKED = "compliance_chain_head_locked"
_NODES_WRITTEN = "compliance_merkle_nodes_written"
_APPENDED = "compliance_event_ids_appended"


def _forget_transaction_state(session: Session, *_args: object) -> None:
    # After a commit or any rollback (a savepoint's too) nothing pending may be trusted: lock
    # the head again, re-read nodes, and let a retried event be appended (not seen as a copy).
    session.info.pop(_HEAD_LOCKED, None)
    session.info.pop(_NODES_WRITTEN, None)
    session.info.pop(_APPENDED, None)


event.listen(Session, "after_commit", _forget_transaction_state)
event.listen(Session, "after_soft_rollback", _forget_transaction_state)


async def append_event(
    session: AsyncSession,
    *,
    topic: str,
    envelope: Envelope,
    now: datetime,
    pii_key: bytes = b"",
) -> AuditEntry | None:
    """Append one event to the chain; an event id already recorded is skipped (dedupe).

    Nothing is flushed per append: a batch of appends in one transaction is written as one
    multi-row insert of entries and nodes and one update of the head when it commits."""
    event_id = str(envelope.event_id)
    seen: set[str] = session.info.setdefault(_APPENDED, set())
    if event_id in seen:
        return None
    with session.no_autoflush:
        duplicate = await session.scalar(
            sa.select(AuditEntry.seq).where(AuditEntry.event_id == event_id)
        )
    if duplicate is not None:
        return None
    # The head row is locked once per transaction; later appends in the same transaction use
    # the object already held (a rolled-back savepoint expires it, and it reloads).
    locked = session.info.get(_HEAD_LOCKED)
    head = (
        await session.get(ChainHead, HEAD_ID)
        if locked
        else await session.get(ChainHead, HEAD_ID, with_for_update=True)
    )
    session.info[_HEAD_LOCKED] = True
    if head is None:
        head = ChainHead(id=HEAD_ID, seq=0, entry_hash=domain.GENESIS_HASH)
        session.add(head)
    seq = head.seq + 1
    recorded_at = now.isoformat()
    body = domain.canonical_entry(
        seq=seq,
        topic=topic,
        recorded_at=recorded_at,
        envelope=domain.protect_personal_data(envelope.model_dump(mode="json"), key=pii_key),
    )
    entry = AuditEntry(
        seq=seq,
        event_id=str(envelope.event_id),
        topic=topic,
        event_type=envelope.type,
        case_key=envelope.key,
        occurred_at=envelope.occurred_at,
        recorded_at=now,
        body=body,
        prev_hash=head.entry_hash,
        entry_hash=domain.chain_hash(prev_hash=head.entry_hash, entry=body),
    )
    session.add(entry)
    head.seq = seq
    head.entry_hash = entry.entry_hash
    seen.add(event_id)
    await _store_nodes(session, index=seq - 1, leaf=merkle.leaf_hash(body))
    return entry


async def _store_nodes(session: AsyncSession, *, index: int, leaf: bytes) -> None:
    """The leaf's node and those of the perfect subtrees it completes (one each on average).

    Nodes written in this transaction are kept in the session (forgotten on any rollback), so
    a batch of appends reads siblings from the database only at its start."""
    cache: dict[tuple[int, int], bytes] = session.info.setdefault(_NODES_WRITTEN, {})
    wanted = {key for key in merkle.siblings_needed(index) if key not in cache}
    known = {**cache, **(await _read_nodes(session, wanted))} if wanted else cache
    completed = merkle.nodes_completed(index, leaf, lambda level, i: known[(level, i)])
    for level, i, value in completed:
        cache[(level, i)] = value
        session.add(MerkleNode(level=level, idx=i, hash=value))


async def _read_nodes(
    session: AsyncSession, wanted: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    rows = await session.execute(
        sa.select(MerkleNode.level, MerkleNode.idx, MerkleNode.hash).where(
            sa.tuple_(MerkleNode.level, MerkleNode.idx).in_(sorted(wanted))
        )
    )
    found = {(level, idx): bytes(value) for level, idx, value in rows.all()}
    missing = wanted - set(found)
    if missing:
        raise MerkleNodesMissing(
            f"{len(missing)} stored Merkle nodes are missing (e.g. {sorted(missing)[:3]}); "
            "the node table does not match the log"
        )
    return found


T = TypeVar("T")


async def _from_nodes(session: AsyncSession, compute: Callable[[merkle.NodeReader], T]) -> T:
    """Run a head or proof computation on exactly the stored nodes it reads (one query)."""
    wanted = merkle.nodes_read(compute)
    known = await _read_nodes(session, wanted) if wanted else {}
    return compute(lambda level, i: known[(level, i)])


class MerkleNodesMissing(DomainError):
    status = 500
    problem_type = "https://qingshou.dev/problems/merkle-nodes-missing"


def _entry_out(entry: AuditEntry) -> AuditEntryOut:
    body = json.loads(entry.body)
    return AuditEntryOut(
        seq=entry.seq,
        event_id=entry.event_id,
        topic=entry.topic,
        event_type=entry.event_type,
        case_key=entry.case_key,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        envelope=body["envelope"],
        prev_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
    )


async def list_entries(
    session: AsyncSession, *, case_key: str | None, after_seq: int, limit: int
) -> AuditEntries:
    """Entries in sequence order, optionally for one case, keyset-paginated by seq."""
    query = sa.select(AuditEntry).where(AuditEntry.seq > after_seq)
    if case_key is not None:
        query = query.where(AuditEntry.case_key == case_key)
    rows = (await session.scalars(query.order_by(AuditEntry.seq).limit(limit + 1))).all()
    page = rows[:limit]
    return AuditEntries(
        entries=[_entry_out(r) for r in page],
        next_after_seq=page[-1].seq if len(rows) > limit else None,
    )


async def verify_chain(session: AsyncSession, *, chunk_size: int) -> ChainVerification:
    """Recompute every hash from the first entry and compare with the stored head."""
    verifier = domain.ChainVerifier()
    columns = (
        AuditEntry.seq,
        AuditEntry.event_id,
        AuditEntry.topic,
        AuditEntry.event_type,
        AuditEntry.body,
        AuditEntry.prev_hash,
        AuditEntry.entry_hash,
    )
    after = 0
    while True:
        rows = (
            await session.execute(
                sa.select(*columns)
                .where(AuditEntry.seq > after)
                .order_by(AuditEntry.seq)
                .limit(chunk_size)
            )
        ).all()
        if not rows:
            break
        entries = [domain.StoredEntry(*row) for row in rows]
        if not verifier.feed(entries):
            break
        after = entries[-1].seq
    head = await session.get(ChainHead, HEAD_ID)
    head_seq = head.seq if head else 0
    head_hash = head.entry_hash if head else domain.GENESIS_HASH
    if verifier.ok and (head_seq != verifier.checked or head_hash != verifier.prev_hash):
        # Entries removed from the end leave a chain that is consistent but shorter than the head.
        verifier.broken_seq = verifier.checked + 1
        verifier.problem = f"chain ends at {verifier.checked} but the head says {head_seq}"
    return ChainVerification(
        ok=verifier.ok,
        entries_checked=verifier.checked,
        head_seq=head_seq,
        head_hash=head_hash,
        first_broken_seq=verifier.broken_seq,
        problem=verifier.problem,
    )


class InvalidTreeSize(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/invalid-tree-size"


async def _size(session: AsyncSession) -> int:
    head = await session.get(ChainHead, HEAD_ID)
    return head.seq if head is not None else 0


async def tree_head(session: AsyncSession) -> TreeHead:
    size = await _size(session)
    root = await _from_nodes(session, lambda node: merkle.range_root(node, 0, size))
    return TreeHead(tree_size=size, root_hash=root.hex())


async def inclusion(session: AsyncSession, *, seq: int, tree_size: int | None) -> InclusionProof:
    """Audit path of entry `seq` in the tree of the first `tree_size` entries (all if None)."""
    size = await _size(session)
    if tree_size is not None and not 0 < tree_size <= size:
        raise InvalidTreeSize(f"the log holds {size} entries; tree_size must be 1..{size}")
    size = tree_size or size
    if not 1 <= seq <= size:
        raise NotFound(f"no entry {seq} in a tree of size {size}")

    def compute(node: merkle.NodeReader) -> tuple[bytes, list[bytes], bytes]:
        return (
            node(0, seq - 1),
            merkle.inclusion_path(node, seq - 1, size),
            merkle.range_root(node, 0, size),
        )

    leaf, path, root = await _from_nodes(session, compute)
    return InclusionProof(
        seq=seq,
        leaf_index=seq - 1,
        tree_size=size,
        leaf_hash=leaf.hex(),
        audit_path=[h.hex() for h in path],
        root_hash=root.hex(),
    )


async def consistency(session: AsyncSession, *, first: int, second: int) -> ConsistencyProof:
    """Proof that the tree of size `first` is a prefix of the tree of size `second`."""
    size = await _size(session)
    if not 0 < first <= second <= size:
        raise InvalidTreeSize(
            f"sizes must satisfy 0 < first <= second <= {size} (got {first}, {second})"
        )

    def compute(node: merkle.NodeReader) -> tuple[bytes, bytes, list[bytes]]:
        return (
            merkle.range_root(node, 0, first),
            merkle.range_root(node, 0, second),
            merkle.consistency_path(node, first, second),
        )

    first_root, second_root, proof = await _from_nodes(session, compute)
    return ConsistencyProof(
        first_size=first,
        second_size=second,
        first_root=first_root.hex(),
        second_root=second_root.hex(),
        proof=[h.hex() for h in proof],
    )


async def issue_checkpoint(
    session: AsyncSession, *, seed_hex: str, now: datetime, correlation_id: str
) -> CheckpointOut | None:
    """Sign the current tree head if the log grew since the last checkpoint; publish it."""
    head = await tree_head(session)
    last = await session.scalar(
        sa.select(Checkpoint.tree_size).order_by(Checkpoint.id.desc()).limit(1)
    )
    if head.tree_size == 0 or head.tree_size == last:
        return None
    key = signing.private_key(seed_hex)
    public = signing.public_key_hex(key)
    message = signing.checkpoint_message(
        tree_size=head.tree_size, root_hash=head.root_hash, issued_at=now
    )
    checkpoint = Checkpoint(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        issued_at=now,
        key_id=signing.key_id(public),
        public_key=public,
        signature=signing.sign(key, message),
    )
    session.add(checkpoint)
    await enqueue_event(
        session,
        topic=COMPLIANCE_EVENTS,
        envelope=build_envelope(
            CheckpointIssued(
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                issued_at=now,
                key_id=checkpoint.key_id,
                public_key=public,
                signature=checkpoint.signature,
            ),
            key="evidence-log",
            producer="compliance",
            correlation_id=correlation_id,
        ),
    )
    await session.flush()
    return CheckpointOut.model_validate(checkpoint)


async def list_checkpoints(session: AsyncSession, *, limit: int) -> list[CheckpointOut]:
    rows = (
        await session.scalars(sa.select(Checkpoint).order_by(Checkpoint.id.desc()).limit(limit))
    ).all()
    return [CheckpointOut.model_validate(r) for r in rows]
