"""Evidence log: append rate vs a raw batched insert of the same rows (same run, same SQLite),
full chain verification rate, and inclusion-proof time as the log grows.

Targets from the compliance issue: append >= 50% of raw; verify >= 1,000,000 entries/s; proof
time growing as log n (stored perfect-subtree nodes).
Usage: python bench/audit.py [entries]  (default 200,000)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from services.compliance import merkle, service  # noqa: E402
from services.compliance.models import AuditEntry  # noqa: E402
from shared.contracts import Envelope, utc_now  # noqa: E402
from shared.db import create_engine, session_factory  # noqa: E402
from shared.migrate import upgrade  # noqa: E402

BATCH = 1000


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


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/compliance.db"
        raw_url = f"sqlite+aiosqlite:///{tmp}/raw.db"
        await asyncio.to_thread(
            upgrade, migrations_dir=ROOT / "services/compliance/migrations", url=url
        )
        await asyncio.to_thread(
            upgrade, migrations_dir=ROOT / "services/compliance/migrations", url=raw_url
        )
        engine, raw_engine = create_engine(url), create_engine(raw_url)
        sessions = session_factory(engine)
        batch = events(n)
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            async with sessions() as session, session.begin():
                for envelope in batch[i : i + BATCH]:
                    await service.append_event(
                        session,
                        topic="contact.events",
                        envelope=envelope,
                        now=utc_now(),
                        pii_key=b"k",
                    )
        append_s = time.perf_counter() - started
        async with engine.connect() as conn:
            rows = [
                dict(r) for r in (await conn.execute(sa.select(AuditEntry.__table__))).mappings()
            ]
        started = time.perf_counter()
        async with raw_engine.begin() as conn:
            for i in range(0, n, BATCH):
                await conn.execute(sa.insert(AuditEntry), rows[i : i + BATCH])
        raw_s = time.perf_counter() - started

        async with sessions() as session:
            started = time.perf_counter()
            verdict = await service.verify_chain(session, chunk_size=5000)
            verify_s = time.perf_counter() - started
        assert verdict.ok
        assert verdict.entries_checked == n

        proof_times = []
        for size in sorted({min(n, s) for s in (1_000, 10_000, 100_000, n)}):
            async with sessions() as session:
                # median of 21: one proof is well under a millisecond, the machine is noisy
                inclusion_s, consistency_s = [], []
                for _ in range(21):
                    started = time.perf_counter()
                    await service.inclusion(session, seq=size // 2 or 1, tree_size=size)
                    inclusion_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    await service.consistency(session, first=size // 3 or 1, second=size)
                    consistency_s.append(time.perf_counter() - started)
                proof_times.append(
                    (size, statistics.median(inclusion_s), statistics.median(consistency_s))
                )
        leaves = [merkle.leaf_hash(bytes(r["body"])) for r in rows]
        started = time.perf_counter()
        merkle.inclusion_proof(len(leaves) // 2, leaves)
        pure_proof_s = time.perf_counter() - started
        await engine.dispose()
        await raw_engine.dispose()

    print(f"\nbench/audit.py  {n:,} events, SQLite, {BATCH} per transaction")
    print(
        f"{'append to the chain (entries/s)':<44}{n / append_s:>12,.0f}   raw batched insert "
        f"{n / raw_s:,.0f}/s   ratio {raw_s / append_s:.2f} (target >= 0.50)"
    )
    print(
        f"{'full verification (entries/s)':<44}{n / verify_s:>12,.0f}   target 1,000,000 "
        f"(ratio {n / verify_s / 1_000_000:.2f})"
    )
    for size, inclusion_median, consistency_median in proof_times:
        print(
            f"{f'inclusion / consistency proof at {size:,} (ms)':<44}"
            f"{inclusion_median * 1000:>12.2f} / {consistency_median * 1000:.2f}"
            "   (stored nodes: log n)"
        )
    print(
        f"{f'one proof recomputed from all {n:,} leaves (ms)':<44}{pure_proof_s * 1000:>12.1f}"
        "   (what a proof cost before stored nodes, hashing alone)"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
