"""Pipeline benchmark: N cases through cases -> scoring -> contact, against the raw broker.

Prints cases/s and p50/p99 latency from case accepted (`case.opened`) to `contact.planned`
seen by a dialer-like consumer, next to the raw broker's produce->consume rate and round-trip
latency measured in the same run on the same broker. Usage:

    python bench/pipeline.py [--cases 10000] [--concurrency 32] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Also points the services at the bench's key file.
from _auth import HEADERS

from shared.stack import SERVICES, LocalStack, sqlite_urls

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Kolkata", "UTC"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_broker(bootstrap: str, *, messages: int, samples: int) -> dict[str, float]:
    """Ceiling: pipelined produce->consume rate, and one-at-a-time round-trip latency."""
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=600,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    try:
        got = 0
        while got < 1:
            batches = await consumer.getmany(timeout_ms=200)
            got += sum(len(v) for v in batches.values())
        value = json.dumps({"pad": "x" * 600}).encode()  # about the size of an envelope
        started = time.perf_counter()

        async def produce() -> None:
            futures = [
                await producer.send(topic, value, key=str(i).encode()) for i in range(messages)
            ]
            await asyncio.gather(*futures)

        producing = asyncio.create_task(produce())
        got = 0
        while got < messages:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            got += sum(len(v) for v in batches.values())
        await producing
        rate = messages / (time.perf_counter() - started)

        latencies = []
        for i in range(samples):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, b"ping", key=str(i).encode())
            received = 0
            while received < 1:
                batches = await consumer.getmany(timeout_ms=200)
                received += sum(len(v) for v in batches.values())
            latencies.append((time.perf_counter() - sent) * 1000)
        return {"rate": rate, "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)}
    finally:
        await consumer.stop()
        await producer.stop()


def case_body(i: int) -> dict[str, Any]:
    return {
        "account_id": f"BENCH-{uuid.uuid4().hex[:12]}",
        "debtor": {"name": f"Debtor {i}", "time_zone": ZONES[i % len(ZONES)]},
        "product": "consumer_loan",
        "currency": "CNY",
        "principal": f"{1000 + i % 90000}.00",
        "due_date": (date.today() - timedelta(days=i % 150 + 1)).isoformat(),
        "industry_risk": i % 100,
    }


async def pipeline(
    stack: LocalStack, *, cases: int, concurrency: int, rate: float | None = None
) -> dict[str, float]:
    """Post `cases` over HTTP (as fast as possible, or paced at `rate` per second); a
    dialer consumer times each contact.planned."""
    opened_at: dict[str, float] = {}
    planned_at: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        "contact.events",
        bootstrap_servers=stack.broker.bootstrap_servers,
        group_id=f"bench-dialer-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=600,
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    for tp in consumer.assignment():
        await consumer.seek_to_end(tp)

    async def dial() -> None:
        while len(planned_at) < cases:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.time()
            for records in batches.values():
                for r in records:
                    event = json.loads(r.value)
                    if event["type"] == "contact.planned":
                        planned_at.setdefault(event["payload"]["case_id"], now)

    dialer = asyncio.create_task(dial())
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(cases):
        queue.put_nowait(i)
    started = time.time()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=HEADERS) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                if rate is not None:
                    await asyncio.sleep(max(0.0, started + i / rate - time.time()))
                response = await client.post(f"{stack.url('cases')}/v1/cases", json=case_body(i))
                response.raise_for_status()
                body = response.json()
                opened_at[body["id"]] = datetime.fromisoformat(body["opened_at"]).timestamp()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    accepted = time.time()
    try:
        await asyncio.wait_for(dialer, timeout=max(120.0, cases / 50))
    finally:
        await consumer.stop()
    finished = max(planned_at.values())
    latencies = [(planned_at[c] - opened_at[c]) * 1000 for c in opened_at if c in planned_at]
    return {
        "cases": float(cases),
        "accept_rate": cases / (accepted - started),
        "rate": cases / (finished - started),
        "p50": statistics.median(latencies),
        "p99": pct(latencies, 0.99),
        "planned": float(len(planned_at)),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--raw-messages", type=int, default=50_000)
    parser.add_argument("--paced-rate", type=float, default=20.0)
    parser.add_argument("--paced-cases", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qs-bench-") as tmp:
        workdir = Path(tmp)
        created: list[str] = []
        if args.backend == "postgres":
            from tests.conftest import create_pg_database

            urls = {}
            for name in SERVICES:
                db, url = create_pg_database(f"bench_{name}")
                created.append(db)
                urls[name] = url
        else:
            urls = sqlite_urls(workdir / "db")
        stack = LocalStack(
            workdir=workdir, database_urls=urls, extra_env={"{P}LOG_LEVEL": "WARNING"}
        )
        stack.start()
        try:
            raw = asyncio.run(
                raw_broker(stack.broker.bootstrap_servers, messages=args.raw_messages, samples=300)
            )
            result = asyncio.run(pipeline(stack, cases=args.cases, concurrency=args.concurrency))
            paced = asyncio.run(
                pipeline(stack, cases=args.paced_cases, concurrency=4, rate=args.paced_rate)
            )
        finally:
            stack.stop()
            if created:
                from tests.conftest import drop_pg_database

                for db in created:
                    drop_pg_database(db)

    print(
        f"\nbench/pipeline.py  backend={args.backend}  cases={args.cases}  "
        f"http concurrency={args.concurrency}"
    )
    print(f"{'measure':<44}{'pipeline':>12}{'raw broker':>14}{'ratio':>9}")
    print(
        f"{'throughput (msg/s; pipeline: cases/s)':<44}{result['rate']:>12.0f}"
        f"{raw['rate']:>14.0f}{result['rate'] / raw['rate']:>9.3f}"
    )
    print(
        f"{'latency p50 (ms; opened -> planned)':<44}{result['p50']:>12.1f}"
        f"{raw['p50']:>14.1f}{result['p50'] / raw['p50']:>9.1f}x"
    )
    print(
        f"{'latency p99 (ms)':<44}{result['p99']:>12.1f}{raw['p99']:>14.1f}"
        f"{result['p99'] / raw['p99']:>9.1f}x"
    )
    print(f"{'HTTP accept rate (cases/s)':<44}{result['accept_rate']:>12.0f}")
    print(
        f"{f'paced at {args.paced_rate:.0f} cases/s: latency p50 (ms)':<44}{paced['p50']:>12.1f}"
        f"{raw['p50']:>14.1f}{paced['p50'] / raw['p50']:>9.1f}x"
    )
    print(
        f"{f'paced at {args.paced_rate:.0f} cases/s: latency p99 (ms)':<44}{paced['p99']:>12.1f}"
        f"{raw['p99']:>14.1f}{paced['p99'] / raw['p99']:>9.1f}x"
    )
    print(
        f"planned {result['planned']:.0f} of {args.cases}; the raw broker column is one "
        "produce->consume hop; the pipeline crosses three hops and four databases."
    )
    complete = result["planned"] == args.cases and paced["planned"] == args.paced_cases
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
