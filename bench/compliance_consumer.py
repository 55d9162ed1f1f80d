"""Compliance's consumer path: events/s through `MessageProcessor.process_batch` with the real
compliance handler (append to the evidence log, then the independent re-check), next to the
same messages handled one at a time in the same transaction pattern (`process` per record,
which is what a batch falls back to when one of its messages fails). Same run, same kind of
database, fresh databases each repeat; medians of the repeats.

    python bench/compliance_consumer.py [CASES] [--repeats N] [--batch N] [--postgres]

Each case brings three events (case.opened, case.scored, contact.planned at 23:00 local, so
every planned call is also a violation to record and publish): CASES 500 gives 1,500 events.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka.structs import ConsumerRecord  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine  # noqa: E402

from services.compliance.handlers import make_handlers  # noqa: E402
from shared.bus import MessageProcessor  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from tests.conftest import create_pg_database, drop_pg_database  # noqa: E402
from tests.integration.test_compliance_consumer import case_events, records  # noqa: E402

MIGRATIONS = ROOT / "services" / "compliance" / "migrations"


async def consume(
    engine: AsyncEngine, batch: list[ConsumerRecord[bytes, bytes]], *, size: int, batched: bool
) -> float:
    """Seconds to consume `batch` in polled batches of `size`, one transaction each."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    processor = MessageProcessor(
        consumer_name="compliance",
        handlers=make_handlers(pii_key=b"k" * 32),
        max_retries=1,
        retry_backoff_ms=1,
    )
    started = time.perf_counter()
    for at in range(0, len(batch), size):
        polled = batch[at : at + size]
        async with sessions() as session, session.begin():
            if batched:
                await processor.process_batch(session, polled)
            else:
                for record in polled:
                    await processor.process(session, record)
    return time.perf_counter() - started


def fresh_database(postgres: bool, workdir: Path, label: str) -> tuple[str, str | None]:
    if postgres:
        name, url = create_pg_database(label)
        upgrade(migrations_dir=MIGRATIONS, url=url)
        return url, name
    url = f"sqlite+aiosqlite:///{workdir / f'{label}-{uuid.uuid4().hex[:8]}.db'}"
    upgrade(migrations_dir=MIGRATIONS, url=url)
    return url, None


def run(cases: int, repeats: int, size: int, postgres: bool) -> None:
    events = records(case_events(cases))
    timings: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for batched in (True, False):  # alternate, so drift hits both alike
                url, name = fresh_database(postgres, Path(tmp), "bench_consumer")
                engine = create_async_engine(url)

                async def once(engine: AsyncEngine = engine, batched: bool = batched) -> float:
                    try:
                        return await consume(engine, events, size=size, batched=batched)
                    finally:
                        await engine.dispose()

                timings[batched].append(asyncio.run(once()))
                if name is not None:
                    drop_pg_database(name)
    n = len(events)
    batch_rate = n / statistics.median(timings[True])
    single_rate = n / statistics.median(timings[False])
    kind = "PostgreSQL" if postgres else "SQLite"
    print(f"\nbench/compliance_consumer.py  {n:,} events ({cases:,} cases), {kind},")
    print(f"polled batches of {size}, medians of {repeats} runs on fresh databases")
    print(f"  process_batch (prepare appends the batch)   {batch_rate:8,.0f} events/s")
    print(
        f"  process per message (the batch fallback)    {single_rate:8,.0f} events/s"
        f"   ratio {batch_rate / single_rate:.2f}"
    )
    print(
        "  runs (s): batch "
        + ", ".join(f"{t:.1f}" for t in timings[True])
        + "; per message "
        + ", ".join(f"{t:.1f}" for t in timings[False])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="the consumer's max poll records")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    run(args.cases, args.repeats, args.batch, args.postgres)


if __name__ == "__main__":
    main()
