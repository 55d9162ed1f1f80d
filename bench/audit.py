"""Evidence log: append rate next to raw batched inserts of the same rows (same run, same
database kind), full chain verification rate, and proof time as the log grows to 1M entries.

Targets from the compliance issue: append >= 50% of a raw batched insert of the same rows;
verify >= 1,000,000 entries/s; inclusion proof time growing as log n (stored nodes from level
6 up, the few entries under lower ones re-read).

    python bench/audit.py [ENTRIES] [--proof-size N] [--per-message N] [--rounds N] [--postgres]

ENTRIES (default 200,000) are appended through `append_events`, 1,000 per transaction (what
the consumer does with a polled batch, through `prepare_appends`). The rows stored are then
inserted raw in four ways, each on a fresh database: Core executemany in one transaction and
with a commit per 1,000, the bare DB-API, and entries with nodes; and the same append calls run
again in one transaction. A round is all of that; ratios are the median (and range) of the
rounds' own ratios, so a noisy spell moves both sides of each. `append_event` one message at a
time in a savepoint per polled batch (the consumer's fallback when a batch fails) is timed
once, --per-message of them (default 20,000). --postgres runs everything on fresh databases it
creates (and drops) on 127.0.0.1:5432 as user postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from services.compliance import domain, merkle, service  # noqa: E402
from services.compliance.models import AuditEntry, ChainHead  # noqa: E402
from shared.contracts import Envelope, utc_now  # noqa: E402
from shared.db import create_engine, session_factory  # noqa: E402
from shared.migrate import upgrade  # noqa: E402

BATCH = 1000
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOPIC = "contact.events"
TENANT = "default"


def events(n: int) -> list[Envelope]:
    return [
        Envelope(
            type="contact.planned",
            version=1,
            producer="contact",
            key=str(uuid.uuid4()),
            correlation_id="bench",
            payload={"n": i, "channel": "call", "template": "t"},
        )
        for i in range(n)
    ]


class Databases:
    """Fresh, migrated databases of one kind: SQLite files or PostgreSQL databases."""

    def __init__(self, *, postgres: bool, tmp: Path) -> None:
        self.postgres = postgres
        self.tmp = tmp
        self.created: list[str] = []

    async def new(self, label: str) -> str:
        if self.postgres:
            name = f"qs_bench_{label}_{uuid.uuid4().hex[:8]}"
            await _admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        else:
            url = f"sqlite+aiosqlite:///{self.tmp / label}.db"
        migrations = ROOT / "services/compliance/migrations"
        await asyncio.to_thread(upgrade, migrations_dir=migrations, url=url)
        return url

    async def drop(self, url: str) -> None:
        """Drop one database made by `new` (free the disk a round used)."""
        if not self.postgres:
            path = url.split("///", 1)[1]
            for suffix in ("", "-wal", "-shm"):
                await asyncio.to_thread(Path(path + suffix).unlink, missing_ok=True)
            return
        name = url.rsplit("/", 1)[1]
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.remove(name)

    async def drop_all(self) -> None:
        await _admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.created))


async def _admin(*statements: str) -> None:
    """Run statements as the PostgreSQL superuser, on one connection."""
    if not statements:
        return
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def timed(step: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


async def append_batches(engine: AsyncEngine, batch: list[Envelope]) -> None:
    sessions = session_factory(engine)
    for i in range(0, len(batch), BATCH):
        async with sessions() as session, session.begin():
            await service.append_events(
                session,
                items=[(TOPIC, envelope) for envelope in batch[i : i + BATCH]],
                now=utc_now(),
                pii_key=b"k",
            )


async def append_in_one_transaction(engine: AsyncEngine, batch: list[Envelope]) -> None:
    """The same `append_events` calls of BATCH events, all in one transaction (as the raw
    batched insert runs): what appending costs without a commit per batch."""
    async with session_factory(engine)() as session, session.begin():
        for i in range(0, len(batch), BATCH):
            await service.append_events(
                session,
                items=[(TOPIC, envelope) for envelope in batch[i : i + BATCH]],
                now=utc_now(),
                pii_key=b"k",
            )


async def append_per_message(engine: AsyncEngine, batch: list[Envelope]) -> None:
    """What the consumer falls back to when a polled batch fails: one transaction, a savepoint,
    `append_event` per message (bench/compliance_consumer.py measures the whole consumer)."""
    sessions = session_factory(engine)
    for i in range(0, len(batch), BATCH):
        async with sessions() as session, session.begin(), session.begin_nested():
            for envelope in batch[i : i + BATCH]:
                await service.append_event(
                    session, topic=TOPIC, envelope=envelope, now=utc_now(), pii_key=b"k"
                )


async def rows_of(engine: AsyncEngine, table: sa.Table) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(table))).mappings()]


async def core_insert(engine: AsyncEngine, *tables: tuple[sa.Table, list[dict[str, Any]]]) -> None:
    """The raw batched insert: SQLAlchemy Core executemany, BATCH rows a statement, one
    transaction."""
    async with engine.begin() as conn:
        for table, rows in tables:
            for i in range(0, len(rows), BATCH):
                await conn.execute(sa.insert(table), rows[i : i + BATCH])


async def core_insert_per_batch(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """The raw batched insert with the append's transaction pattern: a commit per BATCH."""
    for i in range(0, len(rows), BATCH):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(service._ENTRIES), rows[i : i + BATCH])


async def dbapi_insert(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> float:
    """The same rows through the DB-API's executemany, every value bound by its column type
    before the clock starts: the bare cost of the database and its driver."""
    async with engine.connect() as conn:
        dialect = conn.dialect
        compiled = sa.insert(table).compile(dialect=dialect)
        names = list(compiled.positiontup or ())
        processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
        bound = [
            tuple(p(row[n]) if p else row[n] for n, p in zip(names, processors, strict=True))
            for row in rows
        ]
        started = time.perf_counter()
        async with conn.begin():
            for i in range(0, len(bound), BATCH):
                await conn.exec_driver_sql(compiled.string, bound[i : i + BATCH])
        return time.perf_counter() - started


async def verify(engine: AsyncEngine, *, workers: int | None) -> tuple[float, int]:
    async with session_factory(engine)() as session, session.begin():
        started = time.perf_counter()
        verdict = await service.verify_chain(session, chunk_size=5000, workers=workers)
        elapsed = time.perf_counter() - started
    assert verdict.ok, verdict
    return elapsed, verdict.entries_checked


def sqlite_fetch_rate(path: str) -> float:
    """Rows/s of reading the columns verification needs, nothing else (one process)."""
    connection = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        cursor = connection.execute(
            "SELECT seq, event_id, topic, event_type, body, prev_hash, entry_hash "
            "FROM audit_entries ORDER BY seq"
        )
        count = sum(len(rows) for rows in iter(lambda: cursor.fetchmany(5000), []))
        return count / (time.perf_counter() - started)
    finally:
        connection.close()


async def postgres_fetch_rate(engine: AsyncEngine) -> float:
    """Rows/s of reading the columns verification needs, 5,000 a query by seq as verification
    pages, straight through asyncpg, nothing else."""
    sql = (
        "SELECT seq, event_id, topic, event_type, body, prev_hash, entry_hash, tenant "
        "FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT 5000"
    )
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        started = time.perf_counter()
        count, after = 0, 0
        while rows := await raw.fetch(sql, after):
            count += len(rows)
            after = rows[-1][0]
        return count / (time.perf_counter() - started)


async def fill_nodes(engine: AsyncEngine, size: int, *, sizes: list[int]) -> None:
    """A log of `size` entries as proofs see it: the head and every stored perfect-subtree
    node, computed by the append path's own code (merkle.nodes_appended) from synthetic
    leaves. Proofs read nothing else but the entries under the lower nodes they recompute
    (and their entry's tenant), so only the entries the proofs timed at `sizes` need are
    written."""
    sessions = session_factory(engine)
    frontier: list[bytes] = []
    step = 1 << 16
    for start in range(0, size, step):
        leaves = [merkle.leaf_hash(b"entry %d" % i) for i in range(start, min(size, start + step))]
        nodes, frontier = merkle.nodes_appended(start, leaves, frontier)
        rows = [
            {"level": level, "idx": idx, "hash": value}
            for level, idx, value in nodes
            if level >= service.LOWEST_STORED_LEVEL
        ]
        async with sessions() as session, session.begin():
            await session.run_sync(service._insert_many, service._NODES, rows)
    async with sessions() as session, session.begin():
        session.add(ChainHead(id=service.HEAD_ID, seq=size, entry_hash=domain.GENESIS_HASH))
        now = utc_now()
        session.add_all(
            AuditEntry(
                seq=seq,
                event_id=str(uuid.uuid4()),
                topic=TOPIC,
                event_type="contact.planned",
                case_key=None,
                occurred_at=now,
                recorded_at=now,
                body=b"entry %d" % (seq - 1),
                prev_hash=domain.GENESIS_HASH,
                entry_hash=domain.GENESIS_HASH,
                tenant=TENANT,
            )
            for seq in sorted({seq for s in sizes for seq in entries_read(s)})
        )


def proofs_timed(size: int) -> Callable[[merkle.NodeReader], object]:
    """What is timed at `size`: an inclusion proof of `probe(size)` and a consistency proof."""
    return lambda read: (
        read(0, probe(size) - 1),
        merkle.inclusion_path(read, probe(size) - 1, size),
        merkle.range_root(read, 0, size),
        merkle.consistency_path(read, size // 3 or 1, size),
    )


def entries_read(size: int) -> set[int]:
    """The seqs of the entries under the nodes below the stored level the proofs need."""
    return {
        leaf + 1
        for level, index in merkle.nodes_read(proofs_timed(size))
        if level < service.LOWEST_STORED_LEVEL
        for leaf in range(index << level, (index + 1) << level)
    }


def probe(size: int) -> int:
    """The entry whose inclusion proof is timed in a log of `size`."""
    return size // 2 or 1


async def proof_medians(engine: AsyncEngine, size: int) -> tuple[float, float, int]:
    sessions = session_factory(engine)
    inclusion_s, consistency_s = [], []
    async with sessions() as session:
        # median of 21: one proof is well under a millisecond, the machine is noisy
        for _ in range(21):
            inclusion_s.append(
                await timed(
                    lambda: service.inclusion(
                        session, tenant=TENANT, seq=probe(size), tree_size=size
                    )
                )
            )
            consistency_s.append(
                await timed(lambda: service.consistency(session, first=size // 3 or 1, second=size))
            )
    stored = sum(
        level >= service.LOWEST_STORED_LEVEL for level, _ in merkle.nodes_read(proofs_timed(size))
    )
    return statistics.median(inclusion_s), statistics.median(consistency_s), stored


def line(label: str, value: str, comparison: str = "") -> None:
    print(f"{label:<50}{value:>14}   {comparison}")


@dataclass
class Round:
    """One round's seconds: the append and each raw insert of the same rows, one after the
    other on fresh databases, so a noisy spell touches both sides of a ratio."""

    append: float
    append_one: float
    raw: float
    dbapi: float
    commits: float
    both: float


async def append_round(
    dbs: Databases, label: str, batch: list[Envelope], *, keep: bool
) -> tuple[Round, str]:
    """Append `batch`, then insert the rows it stored in each raw way; the round and the log's
    url (its database dropped unless `keep`)."""
    log_url = await dbs.new(f"log{label}")
    async with engine_for(log_url) as engine:
        append_s = await timed(lambda: append_batches(engine, batch))
        entries = await rows_of(engine, service._ENTRIES)
        nodes = await rows_of(engine, service._NODES)
    raw_ways: dict[str, Callable[[AsyncEngine], Awaitable[float]]] = {
        "append_one": lambda engine: timed(lambda: append_in_one_transaction(engine, batch)),
        "raw": lambda engine: timed(lambda: core_insert(engine, (service._ENTRIES, entries))),
        "dbapi": lambda engine: dbapi_insert(engine, service._ENTRIES, entries),
        "commits": lambda engine: timed(lambda: core_insert_per_batch(engine, entries)),
        "both": lambda engine: timed(
            lambda: core_insert(engine, (service._ENTRIES, entries), (service._NODES, nodes))
        ),
    }
    seconds = {}
    for name, insert in raw_ways.items():
        url = await dbs.new(f"{name}{label}")
        async with engine_for(url) as engine:
            seconds[name] = await insert(engine)
        await dbs.drop(url)
    if not keep:
        await dbs.drop(log_url)
    return Round(append=append_s, **seconds), log_url


async def main(n: int, *, per_message: int, proof_size: int, postgres: bool, rounds: int) -> None:
    kind = "PostgreSQL 127.0.0.1:5432" if postgres else "SQLite (WAL)"
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(postgres=postgres, tmp=Path(tmp))
        try:
            batch = events(n)
            consumer_batch = events(per_message)
            # The prepared inputs are kept out of the collector: a consumer never holds 200,000
            # envelopes, and every full collection would walk them (the same for every timing).
            gc.freeze()
            measured: list[Round] = []
            for index in range(rounds):
                one, log_url = await append_round(dbs, str(index), batch, keep=index == rounds - 1)
                measured.append(one)
                gc.freeze()
            async with engine_for(log_url) as engine:
                verify_one = [await verify(engine, workers=1) for _ in range(3)]
                verify_cold_s = None
                verify_warm: list[tuple[float, int]] = []
                if not postgres and workers > 1:
                    verify_cold_s, _ = await verify(engine, workers=workers)
                    verify_warm = [await verify(engine, workers=workers) for _ in range(3)]
            checked = verify_one[0][1]
            if postgres:
                async with engine_for(log_url) as engine:
                    fetch_rate = await postgres_fetch_rate(engine)
            else:
                fetch_rate = sqlite_fetch_rate(log_url.split("///", 1)[1])
            consumer_url = await dbs.new("consumer")
            async with engine_for(consumer_url) as engine:
                per_message_s = await timed(lambda: append_per_message(engine, consumer_batch))
            gc.unfreeze()
            proofs_url = await dbs.new("proofs")
            async with engine_for(proofs_url) as engine:
                sizes = sorted({min(proof_size, s) for s in (1_000, 10_000, 100_000, proof_size)})
                fill_s = await timed(lambda: fill_nodes(engine, proof_size, sizes=sizes))
                proofs = [(size, *await proof_medians(engine, size)) for size in sizes]
            leaves = [merkle.leaf_hash(b"entry %d" % i) for i in range(proof_size)]
            started = time.perf_counter()
            merkle.inclusion_proof(len(leaves) // 2, leaves)
            pure_proof_s = time.perf_counter() - started
        finally:
            await dbs.drop_all()

    def rate_and_ratio(side: str, over: str = "append") -> tuple[float, str]:
        """The median rate of `side` and its time over `over`'s: median and range of the
        per-round ratios."""
        ratios = sorted(getattr(r, side) / getattr(r, over) for r in measured)
        rate = statistics.median(n / getattr(r, side) for r in measured)
        spread = f" (rounds {ratios[0]:.2f}..{ratios[-1]:.2f})" if len(ratios) > 1 else ""
        return rate, f"ratio {statistics.median(ratios):.2f}{spread}"

    append_rate = statistics.median(n / r.append for r in measured)
    print(
        f"\nbench/audit.py  {n:,} events, {kind}, {BATCH} per transaction; medians of "
        f"{rounds} rounds (each: the append, then each raw insert of the rows it stored)"
    )
    print("\nappend (entries/s)                                    rate   compared with")
    raw_rate, raw_ratio = rate_and_ratio("raw")
    line(
        "append_events (batch API), entry + nodes + head",
        f"{append_rate:,.0f}",
        f"raw batched insert of the same entry rows, one transaction (Core executemany) "
        f"{raw_rate:,.0f}/s: {raw_ratio} (target >= 0.50)",
    )
    commits_rate, commits_ratio = rate_and_ratio("commits")
    line(
        "",
        "",
        f"the same entry rows, Core, a commit per {BATCH} as appended {commits_rate:,.0f}/s: "
        f"{commits_ratio} (target >= 0.50, the same commits on both sides)",
    )
    one_rate, _ = rate_and_ratio("append_one")
    _, one_ratio = rate_and_ratio("raw", over="append_one")
    line(
        "append_events, the same calls in one transaction",
        f"{one_rate:,.0f}",
        f"raw batched insert, one transaction, above: {one_ratio} (target >= 0.50, "
        "one commit on both sides)",
    )
    dbapi_rate, dbapi_ratio = rate_and_ratio("dbapi")
    line(
        "",
        "",
        f"the same entry rows through the bare DB-API executemany {dbapi_rate:,.0f}/s: "
        f"{dbapi_ratio}",
    )
    both_rate, both_ratio = rate_and_ratio("both")
    line(
        "",
        "",
        f"the same entry and node rows (Core executemany) {both_rate:,.0f} entries/s: {both_ratio}",
    )
    line(
        f"append_event per message ({per_message:,}, batch fallback)",
        f"{per_message / per_message_s:,.0f}",
        f"raw batched insert (Core) above: ratio {per_message / per_message_s / raw_rate:.2f}",
    )
    print(
        "\nfull verification (entries/s, median of 3): hash chain, columns, Merkle root vs "
        "stored nodes"
    )
    one_rate = statistics.median(count / seconds for seconds, count in verify_one)
    line("in this process", f"{one_rate:,.0f}", f"target 1,000,000/s: ratio {one_rate / 1e6:.2f}")
    if verify_cold_s is not None and verify_warm:
        line(
            f"{workers} worker processes, first call (forkserver)",
            f"{checked / verify_cold_s:,.0f}",
            f"target 1,000,000/s: ratio {checked / verify_cold_s / 1e6:.2f}",
        )
        warm_rate = statistics.median(count / seconds for seconds, count in verify_warm)
        line(
            f"{workers} worker processes, next calls",
            f"{warm_rate:,.0f}",
            f"target 1,000,000/s: ratio {warm_rate / 1e6:.2f}",
        )
    line(
        f"ceiling: {'asyncpg' if postgres else 'SQLite'} reading those rows, nothing else",
        f"{fetch_rate:,.0f}",
        f"rows/s in one process: the target is {1e6 / fetch_rate:.2f}x what one reader "
        "gets, before any hashing",
    )
    print(
        f"\nproofs over a {proof_size:,}-entry log (stored nodes filled in {fill_s:.1f}s from "
        "synthetic leaves by merkle.nodes_appended)"
    )
    print(
        f"{'tree size':>12}{'log2(n)':>9}{'nodes read':>12}{'entries read':>14}"
        f"{'inclusion ms':>14}{'consistency ms':>16}"
    )
    for size, inclusion_median, consistency_median, read in proofs:
        print(
            f"{size:>12,}{math.log2(size):>9.1f}{read:>12}{len(entries_read(size)):>14}"
            f"{inclusion_median * 1000:>14.2f}{consistency_median * 1000:>16.2f}"
        )
    print(
        f"(nodes read: stored ones, for both proofs; entries read: the leaves under the nodes "
        f"below level {service.LOWEST_STORED_LEVEL}, recomputed)"
    )
    line(
        f"one proof recomputed from all {proof_size:,} leaves (ms)",
        f"{pure_proof_s * 1000:,.1f}",
        "what a proof cost before stored nodes (hashing alone)",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs="?", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=20_000)
    parser.add_argument("--proof-size", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(
        main(
            args.entries,
            per_message=args.per_message,
            proof_size=args.proof_size,
            postgres=args.postgres,
            rounds=max(args.rounds, 1),
        )
    )
