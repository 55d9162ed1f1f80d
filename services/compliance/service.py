"""Compliance use cases: append to the evidence chain, read it, verify it; re-check every
contact independently; complaints, prohibited language, QA, reports and the regulator export."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.compiler import SQLCompiler

from services.compliance import complaints, domain, language, merkle, recheck, signing
from services.compliance.models import (
    AuditEntry,
    BlockedContact,
    ChainHead,
    Checkpoint,
    Complaint,
    ComplaintChange,
    KnownCase,
    KnownHold,
    KnownPolicy,
    KnownPreferences,
    MerkleNode,
    ObservedContact,
    QaReview,
    Violation,
)
from services.compliance.schemas import (
    AuditEntries,
    AuditEntryOut,
    ChainVerification,
    CheckpointOut,
    ComplaintChangeOut,
    ComplaintIn,
    ComplaintOut,
    Complaints,
    ComplaintStatusIn,
    ComplianceReport,
    ConsistencyProof,
    CountBy,
    ExportedContact,
    ExportedEvidence,
    InclusionProof,
    LanguageHitOut,
    LanguageReviewOut,
    PurgeOut,
    QaPlan,
    QaReviewIn,
    QaReviewOut,
    RegulatorExport,
    ReviewAssignmentOut,
    SlaOut,
    TemplateIn,
    TranscriptIn,
    TreeHead,
    ViolationOut,
    Violations,
)
from shared.contracts import (
    CaseAssigned,
    CaseClosed,
    CaseOpened,
    CheckpointIssued,
    ComplaintCategory,
    ComplaintOpened,
    ComplaintStatusChanged,
    CompliancePurged,
    ContactBlocked,
    ContactOutcome,
    ContactOutcomeRecorded,
    ContactPlanned,
    ContactPolicyChanged,
    DebtorPreferencesChanged,
    Envelope,
    EventPayload,
    HoldPlaced,
    HoldReleased,
    OutcomeResult,
    QaReviewed,
    Severity,
    TranscriptReviewed,
    UnknownEventError,
    ViolationDetected,
    build_envelope,
    parse_payload,
)
from shared.contracts.envelope import DEFAULT_TENANT
from shared.contracts.topics import COMPLIANCE_EVENTS
from shared.http import Conflict, DomainError, Invalid, NotFound
from shared.outbox import enqueue_event
from shared.rulepacks import (
    PACKS,
    PERSON_HOLDS,
    Channel,
    Policy,
    pack_versions,
    policy_from_document,
)

log = logging.getLogger(__name__)

HEAD_ID = 1
#: The tenant of what compliance publishes about the whole log (checkpoints): it belongs to
#: no tenant, and reveals only a size and hashes.
PLATFORM_TENANT = DEFAULT_TENANT
_HEAD_LOCKED = "compliance_chain_head_locked"
_NODES_WRITTEN = "compliance_merkle_nodes_written"
_APPENDED = "compliance_event_ids_appended"
_PENDING = "compliance_rows_pending"
_PREPARED = "compliance_rows_prepared"
_HELD = "compliance_rows_held"


def _forget_transaction_state(session: Session, *_args: object) -> None:
    # After a commit or any rollback (a savepoint's too) nothing pending may be trusted: lock
    # the head again, re-read nodes, and let a retried event be appended (not seen as a copy).
    # Rows pending in a rolled-back savepoint go with it (begin_nested flushed older ones).
    session.info.pop(_HEAD_LOCKED, None)
    session.info.pop(_NODES_WRITTEN, None)
    session.info.pop(_APPENDED, None)
    session.info.pop(_PENDING, None)


def _forget_after_commit(session: Session) -> None:
    # A released savepoint (SQLAlchemy reports it as a commit too) leaves its rows, the head
    # lock and the nodes in the enclosing transaction: forgetting them there cost three
    # reads per consumed message (the consumer releases a savepoint per message).
    if not session.in_nested_transaction():
        _forget_transaction_state(session)
        session.info.pop(_PREPARED, None)
        session.info.pop(_HELD, None)


event.listen(Session, "after_commit", _forget_after_commit)
event.listen(Session, "after_soft_rollback", _forget_transaction_state)


#: (topic, envelope) of one event to append.
AppendItem = tuple[str, Envelope]


@dataclass(frozen=True)
class _Pending:
    topic: str
    envelope: Envelope
    now: datetime
    pii_key: bytes
    #: str(envelope.event_id), written once: formatting a UUID is not free at 10,000s a second.
    event_id: str


#: Event ids per `IN (...)` of the dedupe query, far below SQLite's and asyncpg's bind limits.
_DEDUPE_CHUNK = 5000
_ENTRIES = cast(sa.Table, AuditEntry.__table__)
_NODES = cast(sa.Table, MerkleNode.__table__)


async def append_event(
    session: AsyncSession,
    *,
    topic: str,
    envelope: Envelope,
    now: datetime,
    pii_key: bytes = b"",
) -> AuditEntry | None:
    """Append one event to the chain; an event id already recorded is skipped (dedupe).

    What the consumer calls per message. The entry is numbered, hashed and its nodes computed
    now, but written when the session flushes (a savepoint's release, the commit, a query
    that autoflushes): a polled batch of messages is written as one multi-row insert of
    entries and one of nodes. The entry returned is a copy, not attached to the session."""
    prepared = _prepared_row(session, str(envelope.event_id))
    if prepared is not _NOT_PREPARED:
        return AuditEntry(**prepared) if prepared is not None else None
    items = [_Pending(topic, envelope, now, pii_key, str(envelope.event_id))]
    stored = await _stored_among(session, items)
    (row,) = await session.run_sync(_append_rows, items, write_now=False, stored=stored)
    return AuditEntry(**row) if row is not None else None


async def append_events(
    session: AsyncSession,
    *,
    items: Sequence[AppendItem],
    now: datetime,
    pii_key: bytes = b"",
) -> list[int | None]:
    """Append events in order; returns each one's seq, or None for an event id already in the
    log, already appended in this transaction or earlier in `items` (dedupe).

    One dedupe query, one multi-row insert of entries and one of nodes per call; the head is
    locked once per transaction and kept in the session (written when it flushes). The rows
    are written before this returns, in the caller's transaction or savepoint: a rollback of
    either undoes them and makes the session forget them, so a retry appends again."""
    pending = [
        _Pending(topic, envelope, now, pii_key, str(envelope.event_id)) for topic, envelope in items
    ]
    stored = await _stored_among(session, pending)
    rows = await session.run_sync(_append_rows, pending, write_now=True, stored=stored)
    return [row["seq"] if row is not None else None for row in rows]


async def prepare_appends(
    session: AsyncSession,
    *,
    items: Sequence[AppendItem],
    now: datetime,
    pii_key: bytes = b"",
) -> None:
    """Append a polled batch's events at once (`append_events`: one dedupe query, one insert
    of entries and one of nodes) ahead of the consumer's handler, which then takes each
    event's entry from `append_event` without a query. What is prepared is used only while
    the transaction or savepoint it was appended in is active: after a rollback of that
    transaction, `append_event` appends again, as if nothing had been prepared."""
    pending = [
        _Pending(topic, envelope, now, pii_key, str(envelope.event_id)) for topic, envelope in items
    ]
    stored = await _stored_among(session, pending)
    rows = await session.run_sync(_append_rows, pending, write_now=True, stored=stored)
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    assert transaction is not None  # _append_rows ran in it
    prepared: dict[str, dict[str, Any] | None] = {}
    for item, row in zip(pending, rows, strict=True):
        # A second copy of an event id in the batch is absent here: its handler call finds
        # the id appended in this transaction (a duplicate) the usual way.
        prepared.setdefault(item.event_id, row)
    session.info[_PREPARED] = (transaction, prepared)


_NOT_PREPARED: Any = object()


def _prepared_row(session: AsyncSession, event_id: str) -> Any:
    """The entry row `prepare_appends` appended for `event_id` (None: it was in the log
    already), handed out once; `_NOT_PREPARED` if there is none in force."""
    held: tuple[SessionTransaction, dict[str, dict[str, Any] | None]] | None = session.info.get(
        _PREPARED
    )
    if held is None:
        return _NOT_PREPARED
    transaction, rows = held
    if not transaction.is_active:
        # Rolled back (the batch is being retried message by message) or ended.
        session.info.pop(_PREPARED, None)
        return _NOT_PREPARED
    return rows.pop(event_id, _NOT_PREPARED)


async def _stored_among(session: AsyncSession, items: Sequence[_Pending]) -> set[str]:
    """The event ids of `items` the log already holds, asked after locking the head (so a
    replica that appended one and committed while this one waited for the lock is seen,
    instead of failing the unique constraint). Ids appended in this transaction are skipped
    by `_append_rows` without asking."""
    seen: set[str] = session.info.get(_APPENDED, set())
    candidates = dict.fromkeys(item.event_id for item in items)
    event_ids = [event_id for event_id in candidates if event_id not in seen]
    if not event_ids:
        return set()
    if not session.info.get(_HEAD_LOCKED):
        await session.run_sync(_locked_head)
    connection = await session.connection()
    driver = connection.dialect.driver
    raw = (await connection.get_raw_connection()).driver_connection
    if raw is None or driver not in ("aiosqlite", "asyncpg") or len(event_ids) > _DEDUPE_CHUNK:
        return await session.run_sync(_stored_event_ids, event_ids)
    # The consumer asks this for every message: one round trip through the driver itself is
    # a fifth of one through Core's adapter (a cursor, an execute, a fetch, a close).
    sql, values = _select_event_ids_sql(connection.dialect, event_ids)
    if driver == "aiosqlite":
        rows = await raw.execute_fetchall(sql, values)
    else:
        rows = await raw.fetch(sql, *values)
    return {row[0] for row in rows}


def _write_pending(session: Session, *_args: object) -> None:
    """Write the rows appended since the last write (at flush, before the session's own)."""
    pending: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = session.info.pop(
        _PENDING, None
    )
    if pending is not None:
        entries, nodes = pending
        _insert_many(session, _ENTRIES, entries, repeated=("recorded_at",))
        _insert_many(session, _NODES, nodes)


event.listen(Session, "before_flush", _write_pending)


def _append_rows(
    session: Session, items: Sequence[_Pending], *, write_now: bool, stored: set[str]
) -> list[dict[str, Any] | None]:
    """Append `items`, given which of their event ids the log held (`_stored_among`): the entry
    rows, None where an item is a duplicate. The rows are written now with any still pending
    (`write_now`), or left pending for the next flush (a session with pending rows always
    has the head to update, so it does flush)."""
    appended: list[dict[str, Any] | None] = [None] * len(items)
    if not items:
        return appended
    seen: set[str] = session.info.setdefault(_APPENDED, set())
    first_of: dict[str, int] = {}
    for index, item in enumerate(items):
        event_id = item.event_id
        if event_id not in seen and event_id not in first_of:
            first_of[event_id] = index
    if not first_of:
        return appended
    head = _locked_head(session)
    chosen = [index for event_id, index in first_of.items() if event_id not in stored]
    if not chosen:
        return appended
    dumped = {index: items[index].envelope.model_dump(mode="json") for index in chosen}
    start = head.seq
    bodies = domain.canonical_entries(
        first_seq=start + 1,
        entries=[
            (
                items[index].topic,
                items[index].now.isoformat(),
                domain.protected_envelope_json(dumped[index], key=items[index].pii_key),
            )
            for index in chosen
        ],
    )
    rows: list[dict[str, Any]] = []
    prev_hash = head.entry_hash
    for seq, index, body in zip(
        range(start + 1, start + len(chosen) + 1), chosen, bodies, strict=True
    ):
        item = items[index]
        entry_hash = domain.chain_hash(prev_hash=prev_hash, entry=body)
        row = {
            "seq": seq,
            "event_id": item.event_id,
            "topic": item.topic,
            "event_type": item.envelope.type,
            "case_key": item.envelope.key,
            "occurred_at": item.envelope.occurred_at,
            "recorded_at": item.now,
            "body": body,
            "prev_hash": prev_hash,
            "entry_hash": entry_hash,
            "purged_at": None,
            "tenant": item.envelope.tenant,
        }
        rows.append(row)
        appended[index] = row
        prev_hash = entry_hash
    nodes, frontier = merkle.nodes_appended(
        start, merkle.leaf_hashes(bodies), _frontier_nodes(session, start)
    )
    entries, node_rows = session.info.setdefault(_PENDING, ([], []))
    entries.extend(rows)
    node_rows.extend(
        {"level": lv, "idx": i, "hash": value}
        for lv, i, value in nodes
        if lv >= LOWEST_STORED_LEVEL
    )
    if write_now:
        _write_pending(session)
    head.seq = rows[-1]["seq"]
    head.entry_hash = prev_hash
    seen.update(row["event_id"] for row in rows)
    session.info[_NODES_WRITTEN] = dict(zip(merkle.frontier(head.seq), frontier, strict=True))
    return appended


def _insert_many(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], *, repeated: Sequence[str] = ()
) -> None:
    """`session.execute(sa.insert(table), rows)`, the same values stored, at a fraction of the
    cost: each value goes through its column type's own bind processor, as Core would, and
    the rows straight to the DB-API's executemany, without Core's per-row bookkeeping (most
    of its cost). A column named in `repeated` holds few distinct values: each is processed
    once."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    compiled = _compiled(("insert", table.name), lambda: sa.insert(table), dialect)
    names = _bind_names(compiled)
    columns: list[list[Any]] = []
    for name in names:
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            if name in repeated:
                done = {value: process(value) for value in set(values)}
                values = [done[value] for value in values]
            else:
                values = list(map(process, values))
        columns.append(values)
    if compiled.positional:
        connection.exec_driver_sql(compiled.string, list(zip(*columns, strict=True)))
    else:
        connection.exec_driver_sql(
            compiled.string,
            [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)],
        )


def _locked_head(session: Session) -> ChainHead:
    """The head row, locked once per transaction; later appends in the same transaction use the
    object already held (a rolled-back savepoint expires it, and it reloads)."""
    held: ChainHead | None = session.info.get(_HEAD_LOCKED)
    if held is not None:
        # Held here, not only in the identity map, which lets go of clean objects.
        return held
    head = session.get(ChainHead, HEAD_ID, with_for_update=True)
    if head is None:
        head = ChainHead(id=HEAD_ID, seq=0, entry_hash=domain.GENESIS_HASH)
        session.add(head)
    session.info[_HEAD_LOCKED] = head
    return head


def _stored_event_ids(session: Session, event_ids: list[str]) -> set[str]:
    """Which of `event_ids` the log holds (any driver, any number of ids)."""
    connection = session.connection()
    found: set[str] = set()
    for at in range(0, len(event_ids), _DEDUPE_CHUNK):
        sql, values = _select_event_ids_sql(connection.dialect, event_ids[at : at + _DEDUPE_CHUNK])
        found.update(value for (value,) in connection.exec_driver_sql(sql, values))
    return found


def _select_event_ids_sql(dialect: sa.Dialect, event_ids: list[str]) -> tuple[str, Any]:
    """The dedupe query and its DB-API parameters, the statement compiled once per power of two
    of ids (padded with a repeat): a dozen statements, not one per batch size."""
    size = 1 << (len(event_ids) - 1).bit_length()
    values = event_ids + event_ids[-1:] * (size - len(event_ids))
    compiled = _compiled(("dedupe", size), partial(_select_event_ids, values), dialect)
    return compiled.string, _bind(compiled, values)


def _select_event_ids(event_ids: list[str]) -> sa.Select[tuple[str]]:
    return sa.select(_ENTRIES.c.event_id).where(_ENTRIES.c.event_id.in_(event_ids))


_COMPILED: dict[tuple[object, ...], SQLCompiler] = {}


def _compiled(
    key: tuple[object, ...], statement: Callable[[], sa.ClauseElement], dialect: sa.Dialect
) -> SQLCompiler:
    """The statement `key` names, compiled once per kind of dialect (IN lists rendered)."""
    cache_key = (*key, type(dialect), dialect.paramstyle)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        compiled = _COMPILED[cache_key] = cast(
            SQLCompiler,
            statement().compile(dialect=dialect, compile_kwargs={"render_postcompile": True}),
        )
    return compiled


def _bind_names(compiled: SQLCompiler) -> list[str]:
    return list(compiled.positiontup or ()) if compiled.positional else list(compiled.params)


def _bind(compiled: SQLCompiler, values: Sequence[Any]) -> Any:
    """DB-API parameters of `compiled` taking `values` in the order they were rendered."""
    if compiled.positional:
        return tuple(values)
    return dict(zip(_bind_names(compiled), values, strict=True))


def _frontier_nodes(session: Session, size: int) -> list[bytes]:
    """The stored nodes of `merkle.frontier(size)`, which an append at leaf `size` combines
    with. The frontier after each append is kept in the session (forgotten on any rollback),
    so a transaction reads it from the database only at its first append."""
    cache: dict[tuple[int, int], bytes] = session.info.get(_NODES_WRITTEN, {})
    wanted = merkle.frontier(size)
    missing = {key for key in wanted if key not in cache}
    known = {**cache, **_tree_nodes(session, missing)} if missing else cache
    return [known[key] for key in wanted]


async def _read_nodes(
    session: AsyncSession, wanted: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    # Heads and proofs read after an autoflush (what this transaction appended is included).
    await session.flush()
    return await session.run_sync(_tree_nodes, wanted)


#: Perfect subtrees of fewer than 2**LOWEST_STORED_LEVEL leaves are not stored: a head or a
#: proof recomputes the few it needs from the (at most 64) entries under them. Storing every
#: node wrote two node rows per entry, which cost as much as the entries themselves; from
#: level 6 up it is one row per 32 entries, and a proof reads at most two blocks of entries
#: more (migration 0007 removed the lower rows of logs written before).
LOWEST_STORED_LEVEL = 6


def _tree_nodes(session: Session, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The tree nodes `wanted` (all of them, or MerkleNodesMissing): stored ones read, lower
    ones recomputed from the entries under them."""
    stored = {node for node in wanted if node[0] >= LOWEST_STORED_LEVEL}
    return {**_stored_nodes(session, stored), **_derived_nodes(session, wanted - stored)}


#: Leaf ranges per statement when recomputing low nodes (a bound on the statements compiled).
_DERIVED_RANGES = 32


def _derived_nodes(session: Session, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Nodes below LOWEST_STORED_LEVEL, each the root of the leaves of the entries under it
    (a purged entry carries its leaf hash). The entries are read once per block."""
    if not wanted:
        return {}
    spans: list[list[int]] = []
    for first, end in sorted((index << level, (index + 1) << level) for level, index in wanted):
        if spans and first <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([first, end])
    connection = session.connection()
    leaves: dict[int, bytes] = {}
    for at in range(0, len(spans), _DERIVED_RANGES):
        chunk = spans[at : at + _DERIVED_RANGES]
        compiled = _compiled(
            ("leaf-ranges", len(chunk)), partial(_select_bodies, len(chunk)), connection.dialect
        )
        # Leaf index i is entry seq i + 1.
        values = {
            f"{bound}{i}": value
            for i, (first, end) in enumerate(chunk)
            for bound, value in (("first", first + 1), ("last", end))
        }
        params = _bind(compiled, [values[name] for name in _bind_names(compiled)])
        rows = connection.exec_driver_sql(compiled.string, params).fetchall()
        bodies = [bytes(body) for _, body in rows]
        leaves.update(zip([seq - 1 for seq, _ in rows], domain.leaves_of(bodies), strict=True))
    found: dict[tuple[int, int], bytes] = {}
    for level, index in wanted:
        under = [leaves.get(leaf) for leaf in range(index << level, (index + 1) << level)]
        if None in under:
            first = (index << level) + 1
            raise MerkleNodesMissing(
                f"the Merkle node (level {level}, index {index}) cannot be recomputed: entries "
                f"{first}..{first + (1 << level) - 1} are not all in the log"
            )
        found[(level, index)] = merkle.root(cast(list[bytes], under))
    return found


def _select_bodies(count: int) -> sa.Select[tuple[int, bytes]]:
    entries = _ENTRIES.c
    return sa.select(entries.seq, entries.body).where(
        sa.or_(
            *(
                entries.seq.between(
                    sa.bindparam(f"first{i}", type_=entries.seq.type),
                    sa.bindparam(f"last{i}", type_=entries.seq.type),
                )
                for i in range(count)
            )
        )
    )


def _stored_nodes(session: Session, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored nodes `wanted` (all of them, or MerkleNodesMissing): one statement per number
    of nodes, compiled once, straight to the DB-API (a head or proof reads only a few dozen,
    and building the statement cost more than running it)."""
    if not wanted:
        return {}
    connection = session.connection()
    compiled = _compiled(
        ("nodes", len(wanted)), partial(_select_nodes, len(wanted)), connection.dialect
    )
    values = {
        f"{name}{i}": value
        for i, node in enumerate(sorted(wanted))
        for name, value in zip(("level", "idx"), node, strict=True)
    }
    params = _bind(compiled, [values[name] for name in _bind_names(compiled)])
    rows = connection.exec_driver_sql(compiled.string, params).fetchall()
    found = {(level, idx): bytes(value) for level, idx, value in rows}
    missing = wanted - set(found)
    if missing:
        raise MerkleNodesMissing(
            f"{len(missing)} stored Merkle nodes are missing (e.g. {sorted(missing)[:3]}); "
            "the node table does not match the log"
        )
    return found


def _select_nodes(count: int) -> sa.Select[tuple[int, int, bytes]]:
    # "(level = ? AND idx = ?) OR ...": SQLite scans the whole table for a row-value IN, but
    # searches the primary key for each term of an OR (PostgreSQL does either way).
    nodes = _NODES.c
    return sa.select(nodes.level, nodes.idx, nodes.hash).where(
        sa.or_(
            *(
                sa.and_(
                    nodes.level == sa.bindparam(f"level{i}", type_=nodes.level.type),
                    nodes.idx == sa.bindparam(f"idx{i}", type_=nodes.idx.type),
                )
                for i in range(count)
            )
        )
    )


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
    body = {"envelope": None} if domain.is_purged(entry.body) else json.loads(entry.body)
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
        purged_at=entry.purged_at,
    )


async def list_entries(
    session: AsyncSession, *, tenant: str, case_key: str | None, after_seq: int, limit: int
) -> AuditEntries:
    """The tenant's entries in sequence order, optionally for one case, keyset-paginated by
    seq (the seqs are the platform log's: a tenant's have gaps)."""
    query = sa.select(AuditEntry).where(AuditEntry.tenant == tenant, AuditEntry.seq > after_seq)
    if case_key is not None:
        query = query.where(AuditEntry.case_key == case_key)
    rows = (await session.scalars(query.order_by(AuditEntry.seq).limit(limit + 1))).all()
    page = rows[:limit]
    return AuditEntries(
        entries=[_entry_out(r) for r in page],
        next_after_seq=page[-1].seq if len(rows) > limit else None,
    )


#: Logs this long or longer are verified by worker processes (SQLite files): starting them
#: costs a fraction of a second, verifying a million entries a few seconds on one core.
PARALLEL_MIN_ENTRIES = 100_000
_VERIFY_COLUMNS = (
    "seq",
    "event_id",
    "topic",
    "event_type",
    "body",
    "prev_hash",
    "entry_hash",
    "tenant",
)


async def verify_chain(
    session: AsyncSession, *, chunk_size: int, workers: int | None = None
) -> ChainVerification:
    """Recompute every hash from the first entry and compare with the stored head; then the
    Merkle tree: the head's root from the stored nodes and the latest checkpoint's root (and
    signature) must both match the tree recomputed from the entries.

    Rows are read straight from the DB-API `chunk_size` at a time and checked a chunk at a
    time (`domain.ChainVerifier.feed_rows`). A SQLite log of PARALLEL_MIN_ENTRIES or more is
    cut into `workers` parts (default: one per CPU; 1 keeps it in this process) verified by
    worker processes from the committed file; this transaction's own appends are flushed
    first and keep it here."""
    await session.flush()
    head = await session.get(ChainHead, HEAD_ID)
    head_seq = head.seq if head else 0
    head_hash = head.entry_hash if head else domain.GENESIS_HASH
    checkpoint = await session.scalar(sa.select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1))
    sizes = {head_seq}
    if checkpoint is not None and 0 < checkpoint.tree_size <= head_seq:
        sizes.add(checkpoint.tree_size)
    wanted = set().union(*(merkle.nodes_read(partial(_tree_root, size=size)) for size in sizes))
    url = (await session.connection()).engine.url
    database = _verifiable_file(session, url, head_seq, workers)
    if database is not None:
        parts = await _verify_in_processes(
            database, head_seq=head_seq, wanted=wanted, workers=workers, chunk_size=chunk_size
        )
    else:
        parts = [await session.run_sync(_verify_here, wanted=wanted, chunk_size=chunk_size)]
    verifier, recomputed = domain.combine_ranges(parts)
    if verifier.ok and (head_seq != verifier.checked or head_hash != verifier.prev_hash):
        # Entries removed from the end leave a chain that is consistent but shorter than the head.
        verifier.broken_seq = verifier.checked + 1
        verifier.problem = f"chain ends at {verifier.checked} but the head says {head_seq}"
    if verifier.ok and head_seq:
        verifier.broken_seq, verifier.problem = await _tree_problem(
            session, recomputed, size=head_seq, checkpoint=checkpoint
        )
    if verifier.ok and verifier.problem is None:
        uncovered = await _uncovered_purge(session)
        if uncovered is not None:
            verifier.broken_seq = uncovered
            verifier.problem = "the entry's content is gone and no logged purge covers it"
    return ChainVerification(
        ok=verifier.ok and verifier.problem is None,
        entries_checked=verifier.checked,
        head_seq=head_seq,
        head_hash=head_hash,
        first_broken_seq=verifier.broken_seq,
        problem=verifier.problem,
    )


def _tree_root(node: merkle.NodeReader, *, size: int) -> bytes:
    return merkle.range_root(node, 0, size)


async def _tree_problem(
    session: AsyncSession,
    recomputed: merkle.NodeReader,
    *,
    size: int,
    checkpoint: Checkpoint | None,
) -> tuple[int | None, str | None]:
    """(first entry concerned, problem) if the stored tree head or the latest checkpoint does
    not match the entries (the chain itself being intact), else (None, None). A stored node
    names the entries under it; a checkpoint names none (the chain was rewritten under it)."""
    # The nodes below LOWEST_STORED_LEVEL are recomputed from the entries just verified.
    wanted = {
        node
        for node in merkle.nodes_read(partial(_tree_root, size=size))
        if node[0] >= LOWEST_STORED_LEVEL
    }
    await session.flush()
    try:
        stored = await session.run_sync(_stored_nodes, wanted)
    except MerkleNodesMissing as exc:
        return 1, str(exc)
    for level, index in sorted(wanted, key=lambda node: node[1] << node[0]):
        if stored[(level, index)] != recomputed(level, index):
            first = (index << level) + 1
            return first, (
                f"stored Merkle node (level {level}, index {index}) does not match entries "
                f"{first}..{first + (1 << level) - 1}"
            )
    if checkpoint is None:
        return None, None
    if checkpoint.tree_size > size:
        return None, f"the latest checkpoint has size {checkpoint.tree_size}, the log {size}"
    if _tree_root(recomputed, size=checkpoint.tree_size).hex() != checkpoint.root_hash:
        return None, (
            f"entries 1..{checkpoint.tree_size} do not hash to the latest checkpoint's root"
        )
    message = signing.checkpoint_message(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        issued_at=checkpoint.issued_at,
    )
    if not signing.verify(
        public_hex=checkpoint.public_key, message=message, signature_hex=checkpoint.signature
    ):
        return None, "the latest checkpoint's signature does not verify"
    return None, None


def _verify_here(
    session: Session, *, wanted: set[tuple[int, int]], chunk_size: int
) -> domain.RangeVerified:
    """The whole log through this session's connection, keyset-paginated by seq."""
    connection = session.connection()
    compiled = _compiled(
        ("verify-chunk",),
        lambda: (
            sa.select(*(_ENTRIES.c[name] for name in _VERIFY_COLUMNS))
            .where(_ENTRIES.c.seq > sa.bindparam("after", type_=sa.BigInteger))
            .order_by(_ENTRIES.c.seq)
            .limit(sa.bindparam("size", type_=sa.Integer))
        ),
        connection.dialect,
    )

    def chunks() -> Iterator[Sequence[domain.Row]]:
        after = 0
        while True:
            values = {**compiled.params, "after": after, "size": chunk_size}
            params = _bind(compiled, [values[name] for name in _bind_names(compiled)])
            rows = connection.exec_driver_sql(compiled.string, params).fetchall()
            if not rows:
                return
            yield cast(Sequence[domain.Row], rows)
            after = rows[-1][0]

    return domain.verify_range(chunks(), wanted=wanted)


def _verifiable_file(
    session: AsyncSession, url: sa.URL, size: int, workers: int | None
) -> str | None:
    """The SQLite file worker processes can verify, if the log is worth it and this
    transaction has appended nothing (the workers see only what is committed)."""
    count = workers if workers is not None else _cpu_count()
    if (
        count < 2
        or (workers is None and size < PARALLEL_MIN_ENTRIES)
        or size < count << domain.BLOCK_LEVEL
        or url.get_backend_name() != "sqlite"
        or url.database in (None, "", ":memory:")
        or session.info.get(_HEAD_LOCKED)
        or "forkserver" not in multiprocessing.get_all_start_methods()
    ):
        return None
    return str(Path(url.database).resolve())  # the workers may not share this directory


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


async def _verify_in_processes(
    database: str,
    *,
    head_seq: int,
    wanted: set[tuple[int, int]],
    workers: int | None,
    chunk_size: int,
) -> list[domain.RangeVerified]:
    """The log cut into parts of whole blocks (the last takes the rest, and anything past the
    head), each verified by a worker process reading the file."""
    count = workers or _cpu_count()
    blocks = head_seq >> domain.BLOCK_LEVEL
    starts = sorted({(blocks * part // count) << domain.BLOCK_LEVEL for part in range(count)})
    limits: list[int | None] = [end - start for start, end in itertools.pairwise(starts)]
    limits.append(None)
    # forkserver: a fork of this (threaded) process could inherit a lock another thread holds.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=len(starts), mp_context=context) as pool:
        return list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool,
                        partial(
                            _verify_file_range,
                            database,
                            first_seq=start + 1,
                            limit=limit,
                            wanted=wanted,
                            chunk_size=max(chunk_size, 1000),
                        ),
                    )
                    for start, limit in zip(starts, limits, strict=True)
                )
            )
        )


def _verify_file_range(
    database: str,
    *,
    first_seq: int,
    limit: int | None,
    wanted: set[tuple[int, int]],
    chunk_size: int,
) -> domain.RangeVerified:
    """In a worker process: `limit` entries from `first_seq` on (all if None), read-only."""
    connection = sqlite3.connect(f"{Path(database).as_uri()}?mode=ro", uri=True)
    try:
        cursor = connection.execute(
            f"SELECT {', '.join(_VERIFY_COLUMNS)} FROM audit_entries "  # noqa: S608 (constants)
            "WHERE seq >= ? ORDER BY seq LIMIT ?",
            (first_seq, -1 if limit is None else limit),
        )
        return domain.verify_range(
            iter(partial(cursor.fetchmany, chunk_size), []), first_seq=first_seq, wanted=wanted
        )
    finally:
        connection.close()


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


async def inclusion(
    session: AsyncSession, *, tenant: str, seq: int, tree_size: int | None
) -> InclusionProof:
    """Audit path of entry `seq` (one of the tenant's) in the tree of the first `tree_size`
    entries (all if None)."""
    size = await _size(session)
    if tree_size is not None and not 0 < tree_size <= size:
        raise InvalidTreeSize(f"the log holds {size} entries; tree_size must be 1..{size}")
    size = tree_size or size
    owner = await session.scalar(sa.select(AuditEntry.tenant).where(AuditEntry.seq == seq))
    if not 1 <= seq <= size or owner != tenant:
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
    await _publish(
        session,
        CheckpointIssued(
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            issued_at=now,
            key_id=checkpoint.key_id,
            public_key=public,
            signature=checkpoint.signature,
        ),
        key="evidence-log",
        correlation_id=correlation_id,
        tenant=PLATFORM_TENANT,
    )
    await session.flush()
    return CheckpointOut.model_validate(checkpoint)


async def list_checkpoints(session: AsyncSession, *, limit: int) -> list[CheckpointOut]:
    rows = (
        await session.scalars(sa.select(Checkpoint).order_by(Checkpoint.id.desc()).limit(limit))
    ).all()
    return [CheckpointOut.model_validate(r) for r in rows]


# =============================================================================================
# The independent re-check: learn from the events, judge every contact again
# =============================================================================================

#: How far back a contact's history reaches for caps (7-day rules plus the day itself).
HISTORY_WINDOW = timedelta(days=8)
#: Rules whose finding rests on earlier contacts too (their entries join the evidence).
_HISTORY_RULE_MARKS = ("-DAY", "7IN7", "2IN7", "BUNCHING")
#: Re-checking after a late policy or preference event looks at this many contacts at most.
RECHECK_LIMIT = 10_000


@dataclass(frozen=True)
class RecheckConfig:
    """What the re-check needs from settings."""

    default_packs: tuple[str, ...] = ("cn",)
    hold_on: frozenset[Severity] = frozenset({Severity.CRITICAL})


Observer = Callable[[AsyncSession, Any, Envelope, int, datetime], Awaitable[list[ObservedContact]]]


def observes(event_type: str) -> bool:
    """Whether the re-check learns anything from events of `event_type`."""
    return event_type in _OBSERVERS


async def observe(
    session: AsyncSession,
    *,
    envelope: Envelope,
    seq: int,
    now: datetime,
    config: RecheckConfig,
) -> int:
    """Learn what the re-check needs from one event just appended at `seq`, and re-check the
    contacts it concerns (a new contact; or earlier ones a late hold, opt-out, case or policy
    now bears on), all within the envelope's tenant. Returns how many new violations were
    found. An event naming a case or debtor compliance knows under another tenant is not
    applied (it stays in the log)."""
    observer = _OBSERVERS.get(envelope.type)
    if observer is None:
        return 0
    try:
        payload = parse_payload(envelope)
    except (UnknownEventError, ValueError):
        return 0  # a version this build does not know: kept in the log, not re-checked
    owner = await _other_owner(session, tenant=envelope.tenant, about=payload)
    if owner is not None:
        # Not dead-lettered: the log must keep every event. Applying it would let one
        # tenant's events change how another tenant's contacts are judged.
        log.warning(
            "%s %s of tenant %s names a case or debtor of tenant %s: logged, not re-checked",
            envelope.type,
            envelope.event_id,
            envelope.tenant,
            owner,
        )
        return 0
    subjects = await observer(session, payload, envelope, seq, now)
    found = 0
    for contact in subjects:
        found += await _recheck_contact(
            session, contact=contact, now=now, config=config, correlation_id=envelope.correlation_id
        )
    return found


async def _other_owner(session: AsyncSession, *, tenant: str, about: Any) -> str | None:
    """Another tenant under which compliance knows the case or debtor that `about` (an event's
    payload, a request's body) names by its `case_id` or `debtor_id`."""
    refs: list[sa.ColumnElement[bool]] = []
    case_id = getattr(about, "case_id", None)
    if isinstance(case_id, uuid.UUID):
        refs.append(KnownCase.case_id == case_id)
    debtor_id = getattr(about, "debtor_id", None)
    if isinstance(debtor_id, uuid.UUID):
        refs.append(KnownCase.debtor_id == debtor_id)
    if not refs:
        return None
    owner: str | None = await session.scalar(
        sa.select(KnownCase.tenant).where(sa.or_(*refs), KnownCase.tenant != tenant).limit(1)
    )
    return owner


async def _refuse_other_tenants_records(
    session: AsyncSession, *, tenant: str, body: ComplaintIn | TranscriptIn
) -> None:
    # A case compliance has not seen may still be named (its case.opened may be on its way);
    # one it knows under another tenant may not.
    if await _other_owner(session, tenant=tenant, about=body) is not None:
        raise NotFound("no such case or debtor")


async def _known_case(
    session: AsyncSession, *, tenant: str, case_id: uuid.UUID
) -> KnownCase | None:
    """The case as compliance saw it opened, if it is the tenant's."""
    case = await session.get(KnownCase, case_id)
    if case is not None:
        _hold(session, case)
    return case if case is not None and case.tenant == tenant else None


def _hold(session: AsyncSession, row: object) -> None:
    """Keep `row` in the session until the transaction ends. The identity map holds rows only
    weakly: without this, a case looked up for one message of a batch is read again for the
    next (and the consumer's messages about a case come together)."""
    held: list[object] = session.info.setdefault(_HELD, [])
    held.append(row)


def _cases_of_debtor(tenant: str, debtor_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return ObservedContact.case_id.in_(
        sa.select(KnownCase.case_id).where(
            KnownCase.tenant == tenant, KnownCase.debtor_id == debtor_id
        )
    )


async def _observe_case_opened(
    session: AsyncSession, event: CaseOpened, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    if await session.get(KnownCase, event.case_id) is None:
        case = KnownCase(
            case_id=event.case_id,
            debtor_id=event.debtor_id,
            time_zone=event.debtor_time_zone,
            opened_at=event.opened_at,
            tenant=envelope.tenant,
        )
        session.add(case)
        _hold(session, case)
    if event.opted_out_channels or event.consents:
        await _keep_preferences(
            session,
            tenant=envelope.tenant,
            debtor_id=event.debtor_id,
            opted_out=event.opted_out_channels,
            consents=event.consents,
            changed_at=event.opened_at,
            seq=seq,
        )
    await session.flush()
    return await _contacts(
        session, ObservedContact.case_id == event.case_id, tenant=envelope.tenant
    )


async def _keep_preferences(
    session: AsyncSession,
    *,
    tenant: str,
    debtor_id: uuid.UUID,
    opted_out: Sequence[str],
    consents: Sequence[str],
    changed_at: datetime,
    seq: int,
) -> None:
    # A version already kept (a redelivery, or another tenant's under the same key) stays.
    if await session.get(KnownPreferences, (debtor_id, changed_at)) is None:
        session.add(
            KnownPreferences(
                debtor_id=debtor_id,
                changed_at=changed_at,
                opted_out=sorted(opted_out),
                consents=sorted(consents),
                evidence_seq=seq,
                tenant=tenant,
            )
        )


async def _observe_preferences(
    session: AsyncSession,
    event: DebtorPreferencesChanged,
    envelope: Envelope,
    seq: int,
    now: datetime,
) -> list[ObservedContact]:
    await _keep_preferences(
        session,
        tenant=envelope.tenant,
        debtor_id=event.debtor_id,
        opted_out=event.opted_out_channels,
        consents=event.consents,
        changed_at=event.changed_at,
        seq=seq,
    )
    await session.flush()
    return await _contacts(
        session,
        _cases_of_debtor(envelope.tenant, event.debtor_id),
        ObservedContact.occurred_at >= event.changed_at,
        tenant=envelope.tenant,
    )


async def _observe_hold_placed(
    session: AsyncSession, event: HoldPlaced, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    if await session.get(KnownHold, event.hold_id) is not None:
        return []
    in_force_from = max(event.starts_at, envelope.occurred_at)
    session.add(
        KnownHold(
            hold_id=event.hold_id,
            case_id=event.case_id,
            debtor_id=event.debtor_id,
            kind=event.kind.value,
            in_force_from=in_force_from,
            ends_at=event.ends_at,
            evidence_seq=seq,
            tenant=envelope.tenant,
        )
    )
    await session.flush()
    scope = (
        _cases_of_debtor(envelope.tenant, event.debtor_id)
        if event.kind.value in PERSON_HOLDS
        else ObservedContact.case_id == event.case_id
    )
    return await _contacts(
        session, scope, ObservedContact.occurred_at >= in_force_from, tenant=envelope.tenant
    )


async def _observe_hold_released(
    session: AsyncSession, event: HoldReleased, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    hold = await session.get(KnownHold, event.hold_id)
    if hold is not None and hold.tenant == envelope.tenant and hold.released_at is None:
        hold.released_at = event.released_at
    return []


async def _observe_closed(
    session: AsyncSession, event: CaseClosed, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    case = await _known_case(session, tenant=envelope.tenant, case_id=event.case_id)
    if case is not None and case.closed_at is None:
        case.closed_at = event.closed_at
    return []


async def _observe_assigned(
    session: AsyncSession, event: CaseAssigned, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    case = await _known_case(session, tenant=envelope.tenant, case_id=event.case_id)
    if case is not None:
        case.team_id, case.collector_id = event.team_id, event.collector_id
    return []


async def _observe_policy(
    session: AsyncSession,
    event: ContactPolicyChanged,
    envelope: Envelope,
    seq: int,
    now: datetime,
) -> list[ObservedContact]:
    if await session.get(KnownPolicy, (envelope.tenant, event.version)) is not None:
        return []
    session.add(
        KnownPolicy(
            tenant=envelope.tenant,
            version=event.version,
            document={**event.policy, "packs": event.packs},
            changed_at=event.changed_at,
            evidence_seq=seq,
        )
    )
    await session.flush()
    return await _contacts(
        session, ObservedContact.occurred_at >= event.changed_at, tenant=envelope.tenant
    )


async def _observe_outcome(
    session: AsyncSession,
    event: ContactOutcome | ContactOutcomeRecorded,
    envelope: Envelope,
    seq: int,
    now: datetime,
) -> list[ObservedContact]:
    # The dialer's report (contact.outcomes) and contact's record of it carry the same id:
    # whichever arrives first is the contact, so it is counted once.
    return await _keep_contact(
        session,
        tenant=envelope.tenant,
        subject=f"outcome:{event.outcome_id}",
        kind="outcome",
        attempt_id=event.attempt_id,
        case_id=event.case_id,
        channel=event.channel,
        result=event.result.value,
        occurred_at=event.occurred_at,
        agency=event.agency,
        automated=getattr(event, "automated", False),
        seq=seq,
    )


async def _observe_planned(
    session: AsyncSession, event: ContactPlanned, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    return await _keep_contact(
        session,
        tenant=envelope.tenant,
        subject=f"planned:{event.attempt_id}",
        kind="planned",
        attempt_id=event.attempt_id,
        case_id=event.case_id,
        channel=event.channel,
        result=None,
        occurred_at=event.planned_at,
        agency=None,
        automated=False,
        seq=seq,
        scheduled_at=envelope.occurred_at,
    )


async def _keep_contact(
    session: AsyncSession,
    *,
    tenant: str,
    subject: str,
    kind: str,
    attempt_id: uuid.UUID | None,
    case_id: uuid.UUID,
    channel: str,
    result: str | None,
    occurred_at: datetime,
    agency: str | None,
    automated: bool,
    seq: int,
    scheduled_at: datetime | None = None,
) -> list[ObservedContact]:
    if await session.get(ObservedContact, subject) is not None:
        return []
    case = await _known_case(session, tenant=tenant, case_id=case_id)
    contact = ObservedContact(
        tenant=tenant,
        subject=subject,
        kind=kind,
        attempt_id=attempt_id,
        case_id=case_id,
        channel=channel,
        result=result,
        occurred_at=occurred_at,
        scheduled_at=scheduled_at,
        agency=agency,
        automated=automated,
        team_id=case.team_id if case else None,
        collector_id=case.collector_id if case else None,
        evidence_seq=seq,
    )
    session.add(contact)
    await session.flush()
    return [contact]


async def _observe_blocked(
    session: AsyncSession, event: ContactBlocked, envelope: Envelope, seq: int, now: datetime
) -> list[ObservedContact]:
    for rule_id in sorted(set(event.rule_ids)):
        if await session.get(BlockedContact, (str(envelope.event_id), rule_id)) is None:
            session.add(
                BlockedContact(
                    tenant=envelope.tenant,
                    event_id=str(envelope.event_id),
                    rule_id=rule_id,
                    case_id=event.case_id,
                    checked_at=event.checked_at,
                )
            )
    return []


_OBSERVERS: dict[str, Observer] = {
    CaseOpened.event_type: _observe_case_opened,
    DebtorPreferencesChanged.event_type: _observe_preferences,
    HoldPlaced.event_type: _observe_hold_placed,
    HoldReleased.event_type: _observe_hold_released,
    CaseClosed.event_type: _observe_closed,
    CaseAssigned.event_type: _observe_assigned,
    ContactPolicyChanged.event_type: _observe_policy,
    ContactOutcome.event_type: _observe_outcome,
    ContactOutcomeRecorded.event_type: _observe_outcome,
    ContactPlanned.event_type: _observe_planned,
    ContactBlocked.event_type: _observe_blocked,
}


async def _contacts(
    session: AsyncSession, *where: sa.ColumnElement[bool], tenant: str
) -> list[ObservedContact]:
    return list(
        (
            await session.scalars(
                sa.select(ObservedContact)
                .where(ObservedContact.tenant == tenant, *where)
                .order_by(ObservedContact.occurred_at)
                .limit(RECHECK_LIMIT)
            )
        ).all()
    )


@dataclass(frozen=True)
class _Known:
    """The situation at a contact's moment, with the log entries it was learned from."""

    case: KnownCase
    situation: recheck.Situation
    policy_version: int | None
    holds: list[KnownHold]
    preferences: KnownPreferences | None
    policy_seq: int | None
    earlier: list[ObservedContact]


async def _known_at(
    session: AsyncSession,
    *,
    case: KnownCase,
    at: datetime,
    subject: str,
    default_packs: tuple[str, ...],
) -> _Known:
    policy = await session.scalar(
        sa.select(KnownPolicy)
        .where(KnownPolicy.tenant == case.tenant, KnownPolicy.changed_at <= at)
        .order_by(KnownPolicy.version.desc())
        .limit(1)
    )
    if policy is not None:
        packs, engine_policy = policy_from_document(policy.document)
    else:
        packs, engine_policy = default_packs, Policy()
    holds = list(
        (
            await session.scalars(
                sa.select(KnownHold).where(
                    KnownHold.tenant == case.tenant,
                    sa.or_(
                        KnownHold.case_id == case.case_id,
                        sa.and_(
                            KnownHold.debtor_id == case.debtor_id,
                            KnownHold.kind.in_(PERSON_HOLDS),
                        ),
                    ),
                )
            )
        ).all()
    )
    spans = [recheck.HoldSpan(h.kind, h.in_force_from, h.ends_at, h.released_at) for h in holds]
    holds = [h for h, span in zip(holds, spans, strict=True) if span.in_force_at(at)]
    preferences = await session.scalar(
        sa.select(KnownPreferences)
        .where(
            KnownPreferences.tenant == case.tenant,
            KnownPreferences.debtor_id == case.debtor_id,
            KnownPreferences.changed_at <= at,
        )
        .order_by(KnownPreferences.changed_at.desc())
        .limit(1)
    )
    earlier = list(
        (
            await session.execute(
                sa.select(ObservedContact, KnownCase.debtor_id)
                .join(KnownCase, KnownCase.case_id == ObservedContact.case_id)
                .where(
                    KnownCase.tenant == case.tenant,
                    ObservedContact.tenant == case.tenant,
                    KnownCase.debtor_id == case.debtor_id,
                    ObservedContact.kind == "outcome",
                    ObservedContact.occurred_at >= at - HISTORY_WINDOW,
                    ObservedContact.occurred_at < at,
                    ObservedContact.subject != subject,
                )
                .order_by(ObservedContact.occurred_at)
            )
        ).all()
    )
    situation = recheck.Situation(
        zones=(case.time_zone,),
        packs=packs,
        policy=engine_policy,
        holds=spans,
        opted_out=frozenset(preferences.opted_out) if preferences else frozenset(),
        consents=frozenset(preferences.consents) if preferences else frozenset(),
        earlier_contacts=[_as_contact(row, str(debtor)) for row, debtor in earlier],
    )
    return _Known(
        case=case,
        situation=situation,
        policy_version=policy.version if policy else None,
        holds=holds,
        preferences=preferences,
        policy_seq=policy.evidence_seq if policy else None,
        earlier=[row for row, _debtor in earlier],
    )


def _as_contact(row: ObservedContact, debtor_id: str) -> recheck.Contact:
    return recheck.Contact(
        subject=row.subject,
        planned=row.kind == "planned",
        case_id=str(row.case_id),
        debtor_id=debtor_id,
        channel=Channel(row.channel),
        at=row.occurred_at,
        result=OutcomeResult(row.result) if row.result else None,
        agency=row.agency,
        scheduled_at=row.scheduled_at,
    )


async def _recheck_contact(
    session: AsyncSession,
    *,
    contact: ObservedContact,
    now: datetime,
    config: RecheckConfig,
    correlation_id: str,
) -> int:
    case = await _known_case(session, tenant=contact.tenant, case_id=contact.case_id)
    if case is None:
        return 0  # judged when the case arrives (without its zone, hours cannot be checked)
    judged = _as_contact(contact, str(case.debtor_id))
    known = await _known_at(
        session,
        case=case,
        at=judged.judged_at,
        subject=contact.subject,
        default_packs=config.default_packs,
    )
    findings = recheck.recheck(judged, known.situation)
    contact.checked_at = now
    found = 0
    for finding in findings:
        exists = await session.scalar(
            sa.select(Violation.violation_id).where(
                Violation.subject == contact.subject, Violation.rule_id == finding.rule_id
            )
        )
        if exists is not None:
            continue
        evidence = {contact.evidence_seq, *(h.evidence_seq for h in known.holds)}
        if known.preferences is not None:
            evidence.add(known.preferences.evidence_seq)
        if known.policy_seq is not None:
            evidence.add(known.policy_seq)
        if any(mark in finding.rule_id for mark in _HISTORY_RULE_MARKS):
            evidence.update(c.evidence_seq for c in known.earlier)
        violation = Violation(
            tenant=contact.tenant,
            violation_id=uuid.uuid4(),
            subject=contact.subject,
            rule_id=finding.rule_id,
            citation=finding.citation[:300],
            severity=finding.severity.value,
            reason=finding.reason[:1000],
            case_id=contact.case_id,
            debtor_id=case.debtor_id,
            agency=contact.agency,
            collector_id=contact.collector_id,
            occurred_at=contact.occurred_at,
            detected_at=now,
            evidence_seqs=sorted(evidence),
        )
        session.add(violation)
        await _publish_violation(
            session,
            violation,
            hold_requested=finding.severity in config.hold_on,
            correlation_id=correlation_id,
        )
        found += 1
    await session.flush()
    return found


async def _publish_violation(
    session: AsyncSession, violation: Violation, *, hold_requested: bool, correlation_id: str
) -> None:
    payload = ViolationDetected(
        violation_id=violation.violation_id,
        rule_id=violation.rule_id,
        citation=violation.citation,
        severity=Severity(violation.severity),
        reason=violation.reason,
        subject=violation.subject,
        case_id=violation.case_id,
        debtor_id=violation.debtor_id,
        agency=violation.agency,
        occurred_at=violation.occurred_at,
        detected_at=violation.detected_at,
        evidence_seqs=violation.evidence_seqs,
        hold_requested=hold_requested,
    )
    await _publish(
        session,
        payload,
        key=str(violation.case_id),
        correlation_id=correlation_id,
        tenant=violation.tenant,
    )


async def _publish(
    session: AsyncSession, payload: EventPayload, *, key: str, correlation_id: str, tenant: str
) -> None:
    await enqueue_event(
        session,
        topic=COMPLIANCE_EVENTS,
        envelope=build_envelope(
            payload, key=key, producer="compliance", correlation_id=correlation_id, tenant=tenant
        ),
    )


def _violation_out(row: Violation) -> ViolationOut:
    return ViolationOut(
        violation_id=row.violation_id,
        subject=row.subject,
        rule_id=row.rule_id,
        citation=row.citation,
        severity=Severity(row.severity),
        reason=row.reason,
        case_id=row.case_id,
        debtor_id=row.debtor_id,
        agency=row.agency,
        collector_id=row.collector_id,
        occurred_at=row.occurred_at,
        detected_at=row.detected_at,
        evidence_seqs=list(row.evidence_seqs),
    )


async def list_violations(
    session: AsyncSession,
    *,
    tenant: str,
    case_id: uuid.UUID | None,
    rule_id: str | None,
    severity: Severity | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Violations:
    """The tenant's violations found by the re-check, newest contact first."""
    query = sa.select(Violation).where(Violation.tenant == tenant)
    if case_id is not None:
        query = query.where(Violation.case_id == case_id)
    if rule_id is not None:
        query = query.where(Violation.rule_id == rule_id)
    if severity is not None:
        query = query.where(Violation.severity == severity.value)
    if since is not None:
        query = query.where(Violation.occurred_at >= since)
    if until is not None:
        query = query.where(Violation.occurred_at < until)
    rows = (
        await session.scalars(
            query.order_by(Violation.occurred_at.desc(), Violation.rule_id).limit(limit)
        )
    ).all()
    return Violations(violations=[_violation_out(v) for v in rows])


# =============================================================================================
# Complaints
# =============================================================================================

CAMPAIGN_WINDOW = timedelta(days=90)
CAMPAIGN_SAMPLE = 20_000


class InvalidComplaintMove(Conflict):
    """The complaint status table forbids the move (e.g. reopening a withdrawn complaint)."""


def _history(changes: Sequence[ComplaintChange]) -> list[complaints.StatusChange]:
    return [
        complaints.StatusChange(
            status=complaints.ComplaintStatus(c.status), at=c.changed_at, by=c.changed_by
        )
        for c in changes
        if c.status != complaints.ComplaintStatus.RECEIVED
    ]


async def _complaint_outs(
    session: AsyncSession, rows: Sequence[Complaint], *, tenant: str, now: datetime
) -> list[ComplaintOut]:
    """The tenant's complaints with their histories and campaign sizes: two queries, however
    many rows."""
    if not rows:
        return []
    changes: dict[uuid.UUID, list[ComplaintChange]] = {row.complaint_id: [] for row in rows}
    for change in (
        await session.scalars(
            sa.select(ComplaintChange)
            .where(ComplaintChange.tenant == tenant, ComplaintChange.complaint_id.in_(changes))
            .order_by(ComplaintChange.id)
        )
    ).all():
        changes[change.complaint_id].append(change)
    campaigns = {row.campaign_id for row in rows if row.campaign_id is not None}
    sizes: dict[uuid.UUID | None, int] = {}
    if campaigns:
        counted = await session.execute(
            sa.select(Complaint.campaign_id, sa.func.count())
            .where(Complaint.tenant == tenant, Complaint.campaign_id.in_(campaigns))
            .group_by(Complaint.campaign_id)
        )
        sizes = {campaign: int(count) for campaign, count in counted.all()}
    return [
        _complaint_out(
            row,
            changes=changes[row.complaint_id],
            similar=sizes.get(row.campaign_id, 1) - 1 if row.campaign_id else 0,
            now=now,
        )
        for row in rows
    ]


def _complaint_out(
    row: Complaint, *, changes: Sequence[ComplaintChange], similar: int, now: datetime
) -> ComplaintOut:
    sla = complaints.sla_state(
        received_at=row.received_at, category=row.category, history=_history(changes), now=now
    )
    status = complaints.ComplaintStatus(row.status)
    return ComplaintOut(
        complaint_id=row.complaint_id,
        debtor_id=row.debtor_id,
        case_id=row.case_id,
        channel=complaints.ComplaintChannel(row.channel),
        category=ComplaintCategory(row.category),
        text=row.text,
        status=status,
        open=complaints.places_hold(status),
        received_at=row.received_at,
        campaign_id=row.campaign_id,
        similar_complaints=similar,
        sla=SlaOut(
            first_response_due=sla.first_response_due,
            first_response_at=sla.first_response_at,
            first_response_met=sla.first_response_met,
            resolution_due=sla.resolution_due,
            resolved_at=sla.resolved_at,
            resolution_met=sla.resolution_met,
            breached=[clock.value for clock in sla.breached],
        ),
        history=[
            ComplaintChangeOut(
                status=complaints.ComplaintStatus(c.status),
                changed_by=c.changed_by,
                note=c.note,
                changed_at=c.changed_at,
            )
            for c in changes
        ],
    )


async def open_complaint(
    session: AsyncSession,
    *,
    tenant: str,
    body: ComplaintIn,
    now: datetime,
    correlation_id: str,
    campaign_min_debtors: int = complaints.DEFAULT_MIN_DEBTORS,
) -> ComplaintOut:
    """Take in a complaint: it holds contact on the case while open (cases places the hold on
    `complaint.opened`), its SLA clocks start at receipt, and near-identical texts from many
    debtors are grouped into a campaign (a review signal; each complaint still counts), among
    the tenant's complaints only."""
    received_at = body.received_at or now
    if received_at > now + timedelta(minutes=5):
        raise Invalid("received_at may be back-dated but not in the future")
    await _refuse_other_tenants_records(session, tenant=tenant, body=body)
    sig = complaints.signature(body.text)
    index = complaints.CampaignIndex()
    recent = (
        await session.execute(
            sa.select(
                Complaint.complaint_id,
                Complaint.debtor_id,
                Complaint.signature,
                Complaint.received_at,
                Complaint.campaign_id,
            )
            .where(
                Complaint.tenant == tenant, Complaint.received_at >= received_at - CAMPAIGN_WINDOW
            )
            .order_by(Complaint.received_at.desc())
            .limit(CAMPAIGN_SAMPLE)
        )
    ).all()
    campaigns: dict[str, uuid.UUID | None] = {}
    for complaint_id, debtor_id, stored, at, campaign_id in recent:
        index.add(str(complaint_id), stored, debtor_id=str(debtor_id), received_at=at)
        campaigns[str(complaint_id)] = campaign_id
    matches = index.query(sig) if sig else []
    debtors = {m.debtor_id for m in matches} | {str(body.debtor_id)}
    campaign_id = next(
        (campaigns[m.complaint_id] for m in matches if campaigns[m.complaint_id]), None
    )
    if campaign_id is None and len(debtors) >= campaign_min_debtors:
        campaign_id = uuid.uuid4()
    if campaign_id is not None and matches:
        await session.execute(
            sa.update(Complaint)
            .where(
                Complaint.tenant == tenant,
                Complaint.complaint_id.in_([uuid.UUID(m.complaint_id) for m in matches]),
                Complaint.campaign_id.is_(None),
            )
            .values(campaign_id=campaign_id)
        )
    row = Complaint(
        tenant=tenant,
        complaint_id=uuid.uuid4(),
        case_id=body.case_id,
        debtor_id=body.debtor_id,
        channel=body.channel.value,
        category=body.category.value,
        text=body.text,
        status=complaints.ComplaintStatus.RECEIVED.value,
        received_at=received_at,
        signature=list(sig),
        campaign_id=campaign_id,
    )
    session.add(row)
    session.add(
        ComplaintChange(
            tenant=tenant,
            complaint_id=row.complaint_id,
            status=row.status,
            changed_by=body.received_by,
            note=f"received by {body.channel.value}",
            changed_at=received_at,
        )
    )
    await session.flush()
    sla = complaints.sla_state(received_at=received_at, category=body.category, history=[], now=now)
    await _publish(
        session,
        ComplaintOpened(
            complaint_id=row.complaint_id,
            case_id=row.case_id,
            debtor_id=row.debtor_id,
            channel=row.channel,
            category=body.category,
            received_at=received_at,
            first_response_due=sla.first_response_due,
            resolution_due=sla.resolution_due,
            campaign_id=campaign_id,
        ),
        key=str(row.case_id or row.debtor_id),
        correlation_id=correlation_id,
        tenant=tenant,
    )
    (out,) = await _complaint_outs(session, [row], tenant=tenant, now=now)
    return out.model_copy(update={"similar_complaints": len(matches)})


async def _complaint(
    session: AsyncSession, *, tenant: str, complaint_id: uuid.UUID, for_update: bool = False
) -> Complaint:
    query = sa.select(Complaint).where(
        Complaint.tenant == tenant, Complaint.complaint_id == complaint_id
    )
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFound(f"no complaint {complaint_id}")
    return row


async def change_complaint_status(
    session: AsyncSession,
    *,
    tenant: str,
    complaint_id: uuid.UUID,
    body: ComplaintStatusIn,
    now: datetime,
    correlation_id: str,
) -> ComplaintOut:
    """Move a complaint (acknowledge, investigate, resolve, reject, withdraw, reopen); a move
    the status table forbids is a 409 naming both states. Publishes the change."""
    row = await _complaint(session, tenant=tenant, complaint_id=complaint_id, for_update=True)
    previous = complaints.ComplaintStatus(row.status)
    try:
        status = complaints.next_status(previous, body.status)
    except complaints.InvalidTransition as exc:
        raise InvalidComplaintMove(str(exc)) from None
    row.status = status.value
    if status in complaints.RESPONSE_STATUSES and row.first_response_at is None:
        row.first_response_at = now
    if status in complaints.DECISION_STATUSES:
        row.resolved_at = now
    elif status is complaints.ComplaintStatus.INVESTIGATING:
        row.resolved_at = None  # reopened
    session.add(
        ComplaintChange(
            tenant=tenant,
            complaint_id=complaint_id,
            status=status.value,
            changed_by=body.changed_by,
            note=body.note,
            changed_at=now,
        )
    )
    await session.flush()
    await _publish(
        session,
        ComplaintStatusChanged(
            complaint_id=complaint_id,
            case_id=row.case_id,
            debtor_id=row.debtor_id,
            status=status.value,
            previous_status=previous.value,
            open=complaints.places_hold(status),
            changed_by=body.changed_by,
            note=body.note,
            changed_at=now,
        ),
        key=str(row.case_id or row.debtor_id),
        correlation_id=correlation_id,
        tenant=tenant,
    )
    (out,) = await _complaint_outs(session, [row], tenant=tenant, now=now)
    return out


async def get_complaint(
    session: AsyncSession, *, tenant: str, complaint_id: uuid.UUID, now: datetime
) -> ComplaintOut:
    """One of the tenant's complaints with its history and SLA clocks as of now."""
    row = await _complaint(session, tenant=tenant, complaint_id=complaint_id)
    (out,) = await _complaint_outs(session, [row], tenant=tenant, now=now)
    return out


async def list_complaints(
    session: AsyncSession,
    *,
    tenant: str,
    status: complaints.ComplaintStatus | None,
    debtor_id: uuid.UUID | None,
    campaign_id: uuid.UUID | None,
    breached_only: bool,
    now: datetime,
    limit: int,
) -> Complaints:
    """The tenant's complaints, newest first; `breached_only` keeps those with an SLA clock
    breached."""
    query = sa.select(Complaint).where(Complaint.tenant == tenant)
    if status is not None:
        query = query.where(Complaint.status == status.value)
    if debtor_id is not None:
        query = query.where(Complaint.debtor_id == debtor_id)
    if campaign_id is not None:
        query = query.where(Complaint.campaign_id == campaign_id)
    rows = (await session.scalars(query.order_by(Complaint.received_at.desc()).limit(limit))).all()
    found = await _complaint_outs(session, rows, tenant=tenant, now=now)
    if breached_only:
        found = [c for c in found if c.sla.breached]
    return Complaints(complaints=found)


# =============================================================================================
# Prohibited language
# =============================================================================================


def _hit_out(hit: language.LanguageHit) -> LanguageHitOut:
    return LanguageHitOut(
        phrase_id=hit.phrase_id,
        category=hit.category.value,
        rule_id=hit.rule_id,
        severity=hit.severity,
        start=hit.start,
        end=hit.end,
        matched=hit.matched,
        turn=hit.turn,
    )


async def review_transcript(
    session: AsyncSession,
    *,
    tenant: str,
    body: TranscriptIn,
    now: datetime,
    correlation_id: str,
    config: RecheckConfig,
) -> LanguageReviewOut:
    """Check a call transcript: prohibited phrases in the agent's turns and the mandatory
    steps. The review is published as evidence; each finding on a known case is a violation."""
    await _refuse_other_tenants_records(session, tenant=tenant, body=body)
    review = language.check_transcript(
        [language.Turn(t.speaker, t.text) for t in body.turns], language=body.language
    )
    review_id = uuid.uuid4()
    text = "\n".join(f"{t.speaker}: {t.text}" for t in body.turns)
    findings = [
        (
            h.rule_id,
            language.CITATIONS.get(h.rule_id, "REGULATIONS.md"),
            h.severity,
            f"{h.category.value}: {h.matched!r} (turn {h.turn})",
        )
        for h in review.hits
    ] + [
        (p.rule_id, "call steps", "major", f"{p.step_id} before {p.requires} (turn {p.turn})")
        for p in review.ordering_problems
    ]
    await _publish_review(
        session,
        tenant=tenant,
        review_id=review_id,
        kind="transcript",
        case_id=body.case_id,
        attempt_id=body.attempt_id,
        ok=review.ok,
        rule_ids=sorted({f[0] for f in findings}),
        hits=review.hits,
        steps_missing=list(review.steps_missing),
        version=review.phrase_list_version,
        text=text,
        now=now,
        correlation_id=correlation_id,
    )
    if body.case_id is not None:
        case = await _known_case(session, tenant=tenant, case_id=body.case_id)
        for rule_id, citation, severity, reason in findings:
            if (
                await session.scalar(
                    sa.select(Violation.violation_id).where(
                        Violation.subject == f"transcript:{review_id}", Violation.rule_id == rule_id
                    )
                )
                is not None
            ):
                continue  # one violation per rule per transcript, however many phrases
            violation = Violation(
                tenant=tenant,
                violation_id=uuid.uuid4(),
                subject=f"transcript:{review_id}",
                rule_id=rule_id,
                citation=citation[:300],
                severity=severity,
                reason=reason[:1000],
                case_id=body.case_id,
                debtor_id=case.debtor_id if case else None,
                agency=None,
                collector_id=case.collector_id if case else None,
                occurred_at=now,
                detected_at=now,
                evidence_seqs=[],
            )
            session.add(violation)
            await session.flush()
            await _publish_violation(
                session,
                violation,
                hold_requested=Severity(severity) in config.hold_on,
                correlation_id=correlation_id,
            )
    return LanguageReviewOut(
        review_id=review_id,
        ok=review.ok,
        phrase_list_version=review.phrase_list_version,
        hits=[_hit_out(h) for h in review.hits],
        steps_found=[s.step_id for s in review.steps_found],
        steps_missing=list(review.steps_missing),
        ordering_problems=[f"{p.step_id} before {p.requires}" for p in review.ordering_problems],
    )


async def review_template(
    session: AsyncSession, *, tenant: str, body: TemplateIn, now: datetime, correlation_id: str
) -> LanguageReviewOut:
    """Check a script or message template before it is used; published as evidence."""
    review = language.check_template(body.text)
    review_id = uuid.uuid4()
    await _publish_review(
        session,
        tenant=tenant,
        review_id=review_id,
        kind="template",
        case_id=None,
        attempt_id=None,
        ok=review.ok,
        rule_ids=sorted({h.rule_id for h in review.hits}),
        hits=review.hits,
        steps_missing=[],
        version=review.phrase_list_version,
        text=body.text,
        now=now,
        correlation_id=correlation_id,
    )
    return LanguageReviewOut(
        review_id=review_id,
        ok=review.ok,
        phrase_list_version=review.phrase_list_version,
        hits=[_hit_out(h) for h in review.hits],
        identified=review.identified,
    )


async def _publish_review(
    session: AsyncSession,
    *,
    tenant: str,
    review_id: uuid.UUID,
    kind: str,
    case_id: uuid.UUID | None,
    attempt_id: uuid.UUID | None,
    ok: bool,
    rule_ids: list[str],
    hits: Sequence[language.LanguageHit],
    steps_missing: list[str],
    version: str,
    text: str,
    now: datetime,
    correlation_id: str,
) -> None:
    # The transcript itself is personal data: the evidence holds its hash and the findings.
    await _publish(
        session,
        TranscriptReviewed(
            review_id=review_id,
            case_id=case_id,
            attempt_id=attempt_id,
            kind=kind,
            ok=ok,
            rule_ids=rule_ids,
            hits=[_hit_out(h).model_dump(mode="json") for h in hits],
            steps_missing=steps_missing,
            phrase_list_version=version,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            reviewed_at=now,
        ),
        key=str(case_id or review_id),
        correlation_id=correlation_id,
        tenant=tenant,
    )


# =============================================================================================
# Quality assurance
# =============================================================================================


async def qa_plan(
    session: AsyncSession,
    *,
    tenant: str,
    period_start: datetime,
    period_end: datetime,
    salt: bytes,
    zone: str,
) -> QaPlan:
    """Which of the tenant's contacts of the period are reviewed: per team (its supervisor)
    and ISO week, and by QA per month, chosen by a keyed hash so nobody can predict or game
    the sample."""
    if period_end <= period_start:
        raise Invalid("period_end must be after period_start")
    rows = (
        await session.scalars(
            sa.select(ObservedContact).where(
                ObservedContact.tenant == tenant,
                ObservedContact.kind == "outcome",
                ObservedContact.occurred_at >= period_start,
                ObservedContact.occurred_at < period_end,
            )
        )
    ).all()
    assignments = complaints.plan_reviews(
        [
            complaints.ContactForReview(
                contact_id=row.subject,
                at=row.occurred_at,
                supervisor=str(row.team_id) if row.team_id else None,
                collector=str(row.collector_id) if row.collector_id else None,
                channel=row.channel,
            )
            for row in rows
        ],
        salt=salt,
        zone=ZoneInfo(zone),
    )
    return QaPlan(
        contacts_considered=len(rows),
        assignments=[
            ReviewAssignmentOut(
                subject=a.contact_id,
                reviewer_kind=a.reviewer_kind.value,
                period=a.period,
                supervisor=a.supervisor,
            )
            for a in assignments
        ],
    )


async def record_qa_review(
    session: AsyncSession, *, tenant: str, body: QaReviewIn, now: datetime, correlation_id: str
) -> QaReviewOut:
    """Store a review of one of the tenant's contacts and publish it as evidence; a failed
    review names why."""
    if not body.passed and not body.findings:
        raise Invalid("a failed review must name at least one finding")
    contact = await session.get(ObservedContact, body.subject)
    if contact is None or contact.tenant != tenant:
        raise NotFound(f"compliance has seen no contact {body.subject}")
    review = QaReview(
        tenant=tenant,
        review_id=uuid.uuid4(),
        subject=body.subject,
        reviewer_kind=body.reviewer_kind,
        reviewer=body.reviewer,
        period=body.period,
        score=body.score,
        passed=body.passed,
        findings=list(body.findings),
        reviewed_at=now,
    )
    session.add(review)
    await session.flush()
    await _publish(
        session,
        QaReviewed(
            review_id=review.review_id,
            subject=review.subject,
            reviewer_kind=review.reviewer_kind,
            reviewer=review.reviewer,
            period=review.period,
            score=review.score,
            passed=review.passed,
            findings=review.findings,
            reviewed_at=now,
        ),
        key=review.subject,
        correlation_id=correlation_id,
        tenant=tenant,
    )
    return QaReviewOut(**body.model_dump(), review_id=review.review_id, reviewed_at=now)


# =============================================================================================
# Reports and the regulator export
# =============================================================================================


async def _counts(
    session: AsyncSession, column: Any, *where: sa.ColumnElement[bool]
) -> list[CountBy]:
    rows = (
        await session.execute(
            sa.select(column, sa.func.count())
            .where(*where)
            .group_by(column)
            .order_by(sa.func.count().desc(), column)
        )
    ).all()
    return [CountBy(key=None if k is None else str(k), count=n) for k, n in rows]


def _share(values: Sequence[bool | None]) -> float | None:
    decided = [v for v in values if v is not None]
    return round(sum(decided) / len(decided), 4) if decided else None


async def report(
    session: AsyncSession,
    *,
    tenant: str,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
) -> ComplianceReport:
    """The tenant's compliance figures of the period: violations by rule, severity, agency and
    collector; complaints per 1,000 accounts worked; SLA adherence; contact's refusals by
    rule; QA."""
    if period_end <= period_start:
        raise Invalid("period_end must be after period_start")
    in_period = sa.and_(
        Violation.tenant == tenant,
        Violation.occurred_at >= period_start,
        Violation.occurred_at < period_end,
    )
    contact_rows = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(ObservedContact.case_id))).where(
                ObservedContact.tenant == tenant,
                ObservedContact.kind == "outcome",
                ObservedContact.occurred_at >= period_start,
                ObservedContact.occurred_at < period_end,
            )
        )
    ).one()
    contacts, accounts = int(contact_rows[0]), int(contact_rows[1])
    complaint_rows = (
        await session.scalars(
            sa.select(Complaint).where(
                Complaint.tenant == tenant,
                Complaint.received_at >= period_start,
                Complaint.received_at < period_end,
            )
        )
    ).all()
    outs = await _complaint_outs(session, complaint_rows, tenant=tenant, now=now)
    qa = (
        (
            await session.execute(
                sa.select(QaReview.passed).where(
                    QaReview.tenant == tenant,
                    QaReview.reviewed_at >= period_start,
                    QaReview.reviewed_at < period_end,
                )
            )
        )
        .scalars()
        .all()
    )
    return ComplianceReport(
        period_start=period_start,
        period_end=period_end,
        contacts=contacts,
        accounts_worked=accounts,
        violations_by_rule=await _counts(session, Violation.rule_id, in_period),
        violations_by_severity=await _counts(session, Violation.severity, in_period),
        violations_by_agency=await _counts(session, Violation.agency, in_period),
        violations_by_collector=await _counts(session, Violation.collector_id, in_period),
        complaints=len(outs),
        complaints_per_1000_accounts=(round(len(outs) * 1000 / accounts, 2) if accounts else None),
        first_response_sla_met=_share([c.sla.first_response_met for c in outs]),
        resolution_sla_met=_share([c.sla.resolution_met for c in outs]),
        blocked_by_rule=await _counts(
            session,
            BlockedContact.rule_id,
            BlockedContact.tenant == tenant,
            BlockedContact.checked_at >= period_start,
            BlockedContact.checked_at < period_end,
        ),
        qa_reviews=len(qa),
        qa_pass_rate=_share(list(qa)),
    )


async def regulator_export(
    session: AsyncSession,
    *,
    tenant: str,
    case_id: uuid.UUID | None,
    period_start: datetime | None,
    period_end: datetime | None,
    now: datetime,
    default_packs: tuple[str, ...],
    limit: int = 5000,
) -> RegulatorExport:
    """Every contact of one of the tenant's cases, or of a period, and why it was (or was not)
    allowed: the packs and their versions, the policy version, the holds, opt-outs and
    consents in force, the re-check's verdict, and the log entries it rests on with inclusion
    proofs against the current tree head, so a regulator can verify each against a published
    checkpoint."""
    if case_id is None and (period_start is None or period_end is None):
        raise Invalid("give a case_id, or both period_start and period_end")
    query = sa.select(ObservedContact).where(
        ObservedContact.tenant == tenant, ObservedContact.kind == "outcome"
    )
    if case_id is not None:
        query = query.where(ObservedContact.case_id == case_id)
    if period_start is not None:
        query = query.where(ObservedContact.occurred_at >= period_start)
    if period_end is not None:
        query = query.where(ObservedContact.occurred_at < period_end)
    rows = (await session.scalars(query.order_by(ObservedContact.occurred_at).limit(limit))).all()
    head = await tree_head(session)
    size = head.tree_size
    exported: list[ExportedContact] = []
    subjects = [row.subject for row in rows]
    violations = (
        (
            await session.scalars(
                sa.select(Violation).where(
                    Violation.tenant == tenant, Violation.subject.in_(subjects)
                )
            )
        ).all()
        if subjects
        else []
    )
    by_subject: dict[str, list[Violation]] = {}
    for v in violations:
        by_subject.setdefault(v.subject, []).append(v)
    for row in rows:
        case = await _known_case(session, tenant=tenant, case_id=row.case_id)
        found = by_subject.get(row.subject, [])
        evidence_seqs = {row.evidence_seq}
        if case is None:
            exported.append(
                ExportedContact(
                    subject=row.subject,
                    case_id=row.case_id,
                    channel=row.channel,
                    result=row.result,
                    occurred_at=row.occurred_at,
                    local_time=None,
                    time_zone=None,
                    packs=[],
                    pack_versions={},
                    policy_version=None,
                    holds_in_force=[],
                    opted_out=[],
                    consents=[],
                    allowed=not found,
                    findings=[f"{v.rule_id}: {v.reason}" for v in found],
                    explanation="the case was never opened in the log: hours cannot be judged",
                    evidence=await _evidence(session, sorted(evidence_seqs), size, tenant=tenant),
                )
            )
            continue
        known = await _known_at(
            session,
            case=case,
            at=row.occurred_at,
            subject=row.subject,
            default_packs=default_packs,
        )
        evidence_seqs.update(h.evidence_seq for h in known.holds)
        if known.preferences is not None:
            evidence_seqs.add(known.preferences.evidence_seq)
        if known.policy_seq is not None:
            evidence_seqs.add(known.policy_seq)
        for v in found:
            evidence_seqs.update(v.evidence_seqs)
        situation = known.situation
        local = row.occurred_at.astimezone(ZoneInfo(case.time_zone))
        explanation = (
            "allowed: no rule of "
            + ", ".join(f"{p} {PACKS[p].version}" for p in situation.packs)
            + f" objects at {local:%Y-%m-%d %H:%M} local time ({case.time_zone}), with no hold, "
            "opt-out or missing consent in force and the caps not reached"
            if not found
            else "not allowed: " + "; ".join(f"{v.rule_id} ({v.citation})" for v in found)
        )
        exported.append(
            ExportedContact(
                subject=row.subject,
                case_id=row.case_id,
                channel=row.channel,
                result=row.result,
                occurred_at=row.occurred_at,
                local_time=local.isoformat(),
                time_zone=case.time_zone,
                packs=list(situation.packs),
                pack_versions=pack_versions(situation.packs),
                policy_version=known.policy_version,
                holds_in_force=sorted(h.kind for h in known.holds),
                opted_out=sorted(situation.opted_out),
                consents=sorted(situation.consents),
                allowed=not found,
                findings=[f"{v.rule_id}: {v.reason}" for v in found],
                explanation=explanation,
                evidence=await _evidence(session, sorted(evidence_seqs), size, tenant=tenant),
            )
        )
    scope = sa.true() if case_id is None else Violation.case_id == case_id
    period = [Violation.tenant == tenant]
    if period_start is not None:
        period.append(Violation.occurred_at >= period_start)
    if period_end is not None:
        period.append(Violation.occurred_at < period_end)
    all_violations = (
        await session.scalars(
            sa.select(Violation).where(scope, *period).order_by(Violation.occurred_at)
        )
    ).all()
    return RegulatorExport(
        generated_at=now,
        case_id=case_id,
        period_start=period_start,
        period_end=period_end,
        tree_size=size,
        root_hash=head.root_hash,
        contacts=exported,
        violations=[_violation_out(v) for v in all_violations],
    )


async def _evidence(
    session: AsyncSession, seqs: Sequence[int], size: int, *, tenant: str
) -> list[ExportedEvidence]:
    in_tree = [seq for seq in seqs if 1 <= seq <= size]
    if not in_tree:
        return []
    entries = {
        entry.seq: entry
        for entry in (
            await session.scalars(
                sa.select(AuditEntry).where(
                    AuditEntry.tenant == tenant, AuditEntry.seq.in_(in_tree)
                )
            )
        ).all()
    }
    wanted = sorted(entries)

    def paths(node: merkle.NodeReader) -> list[list[bytes]]:
        return [merkle.inclusion_path(node, seq - 1, size) for seq in wanted]

    # One read of the nodes every path needs, not one per entry.
    return [
        ExportedEvidence(
            seq=seq,
            event_type=entries[seq].event_type,
            entry_hash=entries[seq].entry_hash,
            leaf_index=seq - 1,
            audit_path=[h.hex() for h in path],
        )
        for seq, path in zip(wanted, await _from_nodes(session, paths), strict=True)
    ]


EXPORT_CSV_COLUMNS = (
    "subject",
    "case_id",
    "channel",
    "result",
    "occurred_at",
    "local_time",
    "time_zone",
    "packs",
    "policy_version",
    "holds_in_force",
    "opted_out",
    "allowed",
    "findings",
    "explanation",
    "evidence_seqs",
)


def export_csv(export: RegulatorExport) -> str:
    """The export's contacts as CSV, one row per contact (the JSON form carries the proofs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_CSV_COLUMNS)
    for c in export.contacts:
        writer.writerow(
            [
                c.subject,
                c.case_id,
                c.channel,
                c.result or "",
                c.occurred_at.isoformat(),
                c.local_time or "",
                c.time_zone or "",
                " ".join(f"{p}@{c.pack_versions.get(p, '')}" for p in c.packs),
                "" if c.policy_version is None else c.policy_version,
                " ".join(c.holds_in_force),
                " ".join(c.opted_out),
                "yes" if c.allowed else "no",
                " | ".join(c.findings),
                c.explanation,
                " ".join(str(e.seq) for e in c.evidence),
            ]
        )
    return buffer.getvalue()


# =============================================================================================
# Retention
# =============================================================================================

PURGE_CHUNK = 1000


async def _uncovered_purge(session: AsyncSession) -> int | None:
    """The first entry whose content is gone without a logged purge naming it."""
    purged = (
        await session.scalars(
            sa.select(AuditEntry.seq).where(
                sa.func.substr(AuditEntry.body, 1, len(domain.PURGED_PREFIX))
                == domain.PURGED_PREFIX
            )
        )
    ).all()
    if not purged:
        return None
    ranges: list[tuple[int, int]] = []
    for body in (
        await session.scalars(
            sa.select(AuditEntry.body).where(AuditEntry.event_type == CompliancePurged.event_type)
        )
    ).all():
        if domain.is_purged(body):
            continue  # purge records are never purged; one that is counts for nothing
        payload = json.loads(body)["envelope"]["payload"]
        ranges.extend((int(first), int(last)) for first, last in payload["seq_ranges"])
    return domain.uncovered_purge(purged, ranges)


def _ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if found and found[-1][1] == seq - 1:
            found[-1] = (found[-1][0], seq)
        else:
            found.append((seq, seq))
    return found


async def purge_entries(
    session: AsyncSession,
    *,
    purge_id: uuid.UUID,
    tenant: str,
    seqs: Sequence[int],
    now: datetime,
    retention_days: int,
    retention_days_by_kind: dict[str, int],
    correlation_id: str,
    causation_id: str | None = None,
    pii_key: bytes = b"",
    reason: str = "retention",
) -> None:
    """Remove the content of the tenant's entries `seqs` (each keeps its hashes and its leaf)
    and log the purge (`compliance.purged`) in the same transaction: retention's way, and a
    data-subject erasure's (services/compliance/privacy.py)."""
    ordered = sorted(seqs)
    for start in range(0, len(ordered), PURGE_CHUNK):
        chunk = ordered[start : start + PURGE_CHUNK]
        entries = (
            await session.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.tenant == tenant, AuditEntry.seq.in_(chunk))
                .with_for_update()
            )
        ).all()
        for entry in entries:
            entry.body = domain.purged_body(entry.body)
            entry.purged_at = now
        await session.flush()
    record = build_envelope(
        CompliancePurged(
            purge_id=purge_id,
            seq_ranges=_ranges(ordered),
            entries=len(ordered),
            retention_days=retention_days,
            retention_days_by_kind=retention_days_by_kind,
            purged_at=now,
            reason=reason,
        ),
        key=str(purge_id),
        producer="compliance",
        correlation_id=correlation_id,
        causation_id=causation_id,
        tenant=tenant,
    )
    # Logged in this transaction (the verifier must never see a purge it cannot account
    # for) and published for anyone anchoring the log; the copy that comes back is a dupe.
    await append_event(session, topic=COMPLIANCE_EVENTS, envelope=record, now=now, pii_key=pii_key)
    await enqueue_event(session, topic=COMPLIANCE_EVENTS, envelope=record)


async def purge_expired(
    session: AsyncSession,
    *,
    tenant: str,
    now: datetime,
    retention_days: int,
    retention_days_by_kind: dict[str, int],
    limit: int,
    dry_run: bool,
    correlation_id: str,
    pii_key: bytes = b"",
) -> PurgeOut:
    """Remove the content of log entries whose case saw its last activity longer ago than the
    retention of their kind (default 3 years, Reg F 1006.100). Each keeps its hashes and leaf,
    so the chain, the Merkle tree and every proof still verify; the purge itself is logged
    (`compliance.purged`), and the verifier accepts no other missing content. A case with an
    open complaint is kept. Closed complaints past retention lose their text. Only the
    tenant's entries and complaints are purged; the purge record is the tenant's."""
    shortest = min([retention_days, *retention_days_by_kind.values()])
    last_activity = (
        sa.select(AuditEntry.case_key, sa.func.max(AuditEntry.occurred_at).label("last"))
        .where(AuditEntry.tenant == tenant, AuditEntry.case_key.is_not(None))
        .group_by(AuditEntry.case_key)
        .having(sa.func.max(AuditEntry.occurred_at) < now - timedelta(days=shortest))
        .subquery()
    )
    rows = (
        await session.execute(
            sa.select(
                AuditEntry.seq, AuditEntry.event_type, AuditEntry.case_key, last_activity.c.last
            )
            .join(last_activity, last_activity.c.case_key == AuditEntry.case_key)
            .where(
                AuditEntry.tenant == tenant,
                AuditEntry.purged_at.is_(None),
                AuditEntry.event_type != CompliancePurged.event_type,
            )
            .order_by(AuditEntry.seq)
        )
    ).all()
    open_statuses = [s.value for s in complaints.OPEN_STATUSES]
    held = {
        str(case_id)
        for case_id in (
            await session.scalars(
                sa.select(Complaint.case_id).where(
                    Complaint.tenant == tenant,
                    Complaint.status.in_(open_statuses),
                    Complaint.case_id.is_not(None),
                )
            )
        ).all()
    }

    def retention_of(event_type: str) -> int:
        matches = [k for k in retention_days_by_kind if event_type.startswith(k)]
        return retention_days_by_kind[max(matches, key=len)] if matches else retention_days

    expired = [
        seq
        for seq, event_type, case_key, last in rows
        if case_key not in held and last < now - timedelta(days=retention_of(event_type))
    ][:limit]
    held_cases = len({case_key for _seq, _t, case_key, _l in rows if case_key in held})
    stale_complaints = sa.and_(
        Complaint.tenant == tenant,
        Complaint.status.not_in(open_statuses),
        Complaint.resolved_at < now - timedelta(days=retention_of("complaint.")),
        Complaint.text != "",
    )
    complaint_count = (
        await session.scalar(
            sa.select(sa.func.count()).select_from(Complaint).where(stale_complaints)
        )
        or 0
    )
    ranges = _ranges(expired)
    if dry_run or not (expired or complaint_count):
        return PurgeOut(
            purge_id=None,
            entries=len(expired),
            complaints=complaint_count,
            seq_ranges=ranges,
            dry_run=dry_run,
            held_cases=held_cases,
        )
    await session.execute(
        sa.update(Complaint).where(stale_complaints).values(text="", signature=[])
    )
    purge_id = uuid.uuid4()
    if expired:
        await purge_entries(
            session,
            purge_id=purge_id,
            tenant=tenant,
            seqs=expired,
            now=now,
            retention_days=retention_days,
            retention_days_by_kind=retention_days_by_kind,
            correlation_id=correlation_id,
            pii_key=pii_key,
        )
    return PurgeOut(
        purge_id=purge_id,
        entries=len(expired),
        complaints=complaint_count,
        seq_ranges=ranges,
        dry_run=False,
        held_cases=held_cases,
    )
