"""Evidence log: append rate next to raw batched inserts of the same rows (same run, same
database kind), full chain verification rate, and proof time as the log grows to 1M entries.

Targets from the compliance issue: append >= 50% of a raw batched insert of the same rows;
verify >= 1,000,000 entries/s; inclusion proof time growing as log n (stored nodes).

    python bench/audit.py [ENTRIES] [--proof-size N] [--per-message N] [--postgres]

ENTRIES (default 200,000) are appended through `append_events`, 1,000 per transaction (what
the consumer does with a polled batch, through `prepare_appends`), and through `append_event`
one message at a time in a savepoint per polled batch (what the consumer falls back to when a
batch fails; --per-message of them, default 20,000). Each figure is printed next to the
ceiling or target it is compared with, measured in the same run. --postgres runs everything
on fresh databases it creates (and drops) on 127.0.0.1:5432 as user postgres.
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
            import asyncpg

            name = f"qs_bench_{label}_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(PG_ADMIN)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            self.created.append(name)
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        else:
            url = f"sqlite+aiosqlite:///{self.tmp / label}.db"
        migrations = ROOT / "services/compliance/migrations"
        await asyncio.to_thread(upgrade, migrations_dir=migrations, url=url)
        return url

    async def drop_all(self) -> None:
        if not self.created:
            return
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN)
        try:
            for name in self.created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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


async def fill_nodes(engine: AsyncEngine, size: int, *, probes: list[int]) -> None:
    """A log of `size` entries as proofs see it: the head and every stored perfect-subtree
    node, computed by the append path's own code (merkle.nodes_appended) from synthetic
    leaves. An inclusion proof reads nothing else but its entry's tenant, so only the
    entries at `probes` are written."""
    sessions = session_factory(engine)
    frontier: list[bytes] = []
    step = 1 << 16
    for start in range(0, size, step):
        leaves = [merkle.leaf_hash(b"entry %d" % i) for i in range(start, min(size, start + step))]
        nodes, frontier = merkle.nodes_appended(start, leaves, frontier)
        rows = [{"level": level, "idx": idx, "hash": value} for level, idx, value in nodes]
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
            for seq in sorted(set(probes))
        )


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
    nodes = len(
        merkle.nodes_read(
            lambda read: (
                merkle.inclusion_path(read, probe(size) - 1, size),
                merkle.range_root(read, 0, size),
            )
        )
    )
    return statistics.median(inclusion_s), statistics.median(consistency_s), nodes


def line(label: str, value: str, comparison: str = "") -> None:
    print(f"{label:<50}{value:>14}   {comparison}")


async def main(n: int, *, per_message: int, proof_size: int, postgres: bool) -> None:
    kind = "PostgreSQL 127.0.0.1:5432" if postgres else "SQLite (WAL)"
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(postgres=postgres, tmp=Path(tmp))
        try:
            labels = ("log", "consumer", "raw", "dbapi", "commits")
            urls = {label: await dbs.new(label) for label in labels}
            urls["both"] = await dbs.new("both")
            urls["proofs"] = await dbs.new("proofs")
            batch = events(n)
            consumer_batch = events(per_message)
            # The prepared inputs are kept out of the collector: a consumer never holds 200,000
            # envelopes, and every full collection would walk them (the same for every timing).
            gc.freeze()
            async with engine_for(urls["log"]) as engine:
                append_s = await timed(lambda: append_batches(engine, batch))
                entries = await rows_of(engine, service._ENTRIES)
                nodes = await rows_of(engine, service._NODES)
                gc.freeze()
                verify_one_s, checked = await verify(engine, workers=1)
                verify_cold_s = verify_warm_s = None
                if not postgres and workers > 1:
                    verify_cold_s, _ = await verify(engine, workers=workers)
                    verify_warm_s, _ = await verify(engine, workers=workers)
            fetch_rate = None if postgres else sqlite_fetch_rate(urls["log"].split("///", 1)[1])
            async with engine_for(urls["consumer"]) as engine:
                per_message_s = await timed(lambda: append_per_message(engine, consumer_batch))
            async with engine_for(urls["raw"]) as engine:
                raw_s = await timed(lambda: core_insert(engine, (service._ENTRIES, entries)))
            async with engine_for(urls["dbapi"]) as engine:
                dbapi_s = await dbapi_insert(engine, service._ENTRIES, entries)
            async with engine_for(urls["commits"]) as engine:
                commits_s = await timed(lambda: core_insert_per_batch(engine, entries))
            async with engine_for(urls["both"]) as engine:
                both_s = await timed(
                    lambda: core_insert(
                        engine, (service._ENTRIES, entries), (service._NODES, nodes)
                    )
                )
            gc.unfreeze()
            async with engine_for(urls["proofs"]) as engine:
                sizes = sorted({min(proof_size, s) for s in (1_000, 10_000, 100_000, proof_size)})
                fill_s = await timed(
                    lambda: fill_nodes(engine, proof_size, probes=[probe(s) for s in sizes])
                )
                proofs = [(size, *await proof_medians(engine, size)) for size in sizes]
            leaves = [merkle.leaf_hash(b"entry %d" % i) for i in range(proof_size)]
            started = time.perf_counter()
            merkle.inclusion_proof(len(leaves) // 2, leaves)
            pure_proof_s = time.perf_counter() - started
        finally:
            await dbs.drop_all()

    rate = n / append_s
    print(f"\nbench/audit.py  {n:,} events, {kind}, {BATCH} per transaction")
    print("\nappend (entries/s)                                    rate   compared with")
    line(
        "append_events (batch API), entry + nodes + head",
        f"{rate:,.0f}",
        f"raw batched insert of the same entry rows (Core executemany) {n / raw_s:,.0f}/s: "
        f"ratio {raw_s / append_s:.2f} (target >= 0.50)",
    )
    line(
        "",
        "",
        f"the same entry rows through the bare DB-API executemany {n / dbapi_s:,.0f}/s: "
        f"ratio {dbapi_s / append_s:.2f}",
    )
    line(
        "",
        "",
        f"the same entry and node rows (Core executemany) {n / both_s:,.0f} entries/s: "
        f"ratio {both_s / append_s:.2f}",
    )
    line(
        "",
        "",
        f"the same entry rows, Core, a commit per {BATCH} as appended {n / commits_s:,.0f}/s: "
        f"ratio {commits_s / append_s:.2f}",
    )
    line(
        f"append_event per message ({per_message:,}, batch fallback)",
        f"{per_message / per_message_s:,.0f}",
        f"raw batched insert (Core) above: ratio {per_message / per_message_s / (n / raw_s):.2f}",
    )
    print("\nfull verification (entries/s): hash chain, columns, Merkle root vs stored nodes")
    line(
        "in this process",
        f"{checked / verify_one_s:,.0f}",
        f"target 1,000,000/s: ratio {checked / verify_one_s / 1e6:.2f}",
    )
    if verify_cold_s is not None and verify_warm_s is not None:
        line(
            f"{workers} worker processes, first call (forkserver)",
            f"{checked / verify_cold_s:,.0f}",
            f"target 1,000,000/s: ratio {checked / verify_cold_s / 1e6:.2f}",
        )
        line(
            f"{workers} worker processes, next call",
            f"{checked / verify_warm_s:,.0f}",
            f"target 1,000,000/s: ratio {checked / verify_warm_s / 1e6:.2f}",
        )
    if fetch_rate is not None:
        line(
            "ceiling: SQLite reading those rows, nothing else",
            f"{fetch_rate:,.0f}",
            "rows/s in one process (the workers share the machine's cores)",
        )
    print(
        f"\nproofs over a {proof_size:,}-entry log (stored nodes filled in {fill_s:.1f}s from "
        "synthetic leaves by merkle.nodes_appended)"
    )
    print(f"{'tree size':>12}{'log2(n)':>9}{'nodes read':>12}{'inclusion ms':>14}", end="")
    print(f"{'consistency ms':>16}")
    for size, inclusion_median, consistency_median, read in proofs:
        print(
            f"{size:>12,}{math.log2(size):>9.1f}{read:>12}"
            f"{inclusion_median * 1000:>14.2f}{consistency_median * 1000:>16.2f}"
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
    args = parser.parse_args()
    asyncio.run(
        main(
            args.entries,
            per_message=args.per_message,
            proof_size=args.proof_size,
            postgres=args.postgres,
        )
    )
