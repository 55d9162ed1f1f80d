"""Cases API: `POST /v1/cases` under load from a separate process (an httpx load generator),
req/s and p50/p99, next to the same app's no-DB endpoint (`GET /healthz`) in the same run, on
SQLite and, when it answers on 127.0.0.1:5432, PostgreSQL. Target: POST >= 40% of /healthz req/s.

The service runs as `python -m services.cases serve` (one uvicorn process) with the bus and the
scheduled jobs off, so the figure is the HTTP + validation + one-transaction write path only."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _http_load import LoadResult, measure, serve  # noqa: E402

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
TARGET = 0.40
HEALTHZ = "GET /healthz (no-DB)"
POST = "POST /v1/cases"


@dataclass(frozen=True)
class CaseBodies:
    """A valid new case per request, its account_id unique per (prefix, worker, n)."""

    prefix: str
    due_date: str

    def __call__(self, worker: int, n: int) -> bytes:
        return json.dumps(
            {
                "account_id": f"{self.prefix}-{worker}-{n}",
                "debtor": {
                    "name": "Bench Debtor",
                    "phone": "+8613800138000",
                    "time_zone": "Asia/Shanghai",
                },
                "product": "consumer_loan",
                "currency": "CNY",
                "principal": "12000.00",
                "interest": "350.50",
                "fees": "0",
                "due_date": self.due_date,
                "industry_risk": 40,
            }
        ).encode()


@dataclass
class BackendRun:
    healthz: list[LoadResult]
    post: list[LoadResult]

    def ratios(self) -> list[float]:
        return [
            p.req_per_s / h.req_per_s if h.req_per_s else 0.0
            for h, p in zip(self.healthz, self.post, strict=True)
        ]


def run_backend(
    database_url: str,
    workdir: Path,
    *,
    seconds: float,
    warmup_s: float,
    concurrency: int,
    rounds: int,
) -> BackendRun:
    """Migrate and serve the cases service on `database_url`; per round, /healthz then POST."""
    env = {
        "CASES_DATABASE_URL": database_url,
        "CASES_ENABLE_BUS": "false",
        "CASES_ENABLE_JOBS": "false",
        "CASES_LOG_LEVEL": "WARNING",
    }
    due = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
    run = BackendRun(healthz=[], post=[])
    workdir.mkdir(parents=True, exist_ok=True)
    with serve("cases", env, workdir=workdir, ready_path="/readyz") as base:
        for r in range(rounds):
            run.healthz.append(
                measure(
                    f"{base}/healthz",
                    seconds=seconds,
                    warmup_s=warmup_s,
                    concurrency=concurrency,
                    expect=200,
                )
            )
            run.post.append(
                measure(
                    f"{base}/v1/cases",
                    bodies=CaseBodies(prefix=f"BENCH-{r}", due_date=due),
                    seconds=seconds,
                    warmup_s=warmup_s,
                    concurrency=concurrency,
                    expect=201,
                )
            )
    return run


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> tuple[str, str] | str:
    """(name, SQLAlchemy URL) of a new throwaway database, or why PostgreSQL is unusable."""
    name = f"bench_cases_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_DSN} not usable: {exc!r}"
    return name, f"{PG_BASE_URL}/{name}"


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(label: str, run: BackendRun) -> None:
    for name, results in ((HEALTHZ, run.healthz), (POST, run.post)):
        print(
            f"{label:<12}{name:<24}"
            f"{_median([x.req_per_s for x in results]):>10,.0f}"
            f"{_median([x.p50_ms for x in results]):>10.1f}"
            f"{_median([x.p99_ms for x in results]):>10.1f}"
            f"{sum(x.errors for x in results):>8}"
        )
    ratios = run.ratios()
    ratio = _median(ratios)
    verdict = "meets" if ratio >= TARGET else "BELOW"
    per_round = " ".join(f"{x:.2f}" for x in ratios)
    print(
        f"{label:<12}ratio to no-DB {ratio:.2f} (target >= {TARGET:.2f}, {verdict})"
        f"   per round: {per_round}"
    )
    for name, results in ((HEALTHZ, run.healthz), (POST, run.post)):
        errors = sum(x.errors for x in results)
        if errors:
            first = next(x.first_error for x in results if x.errors)
            print(
                f"{label:<12}WARNING: {errors} failed {name} requests, figures not meaningful; "
                f"first: {first}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per figure")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
    parser.add_argument("--concurrency", type=int, default=16, help="connections")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per backend (medians)")
    args = parser.parse_args()

    def bench(url: str, workdir: Path) -> BackendRun:
        return run_backend(
            url,
            workdir,
            seconds=args.seconds,
            warmup_s=args.warmup,
            concurrency=args.concurrency,
            rounds=args.rounds,
        )

    runs: list[tuple[str, BackendRun]] = []
    skipped: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'cases.db'}"
        runs.append(("SQLite", bench(sqlite_url, Path(tmp) / "sqlite")))
        created = create_pg_database()
        if isinstance(created, str):
            skipped = created
        else:
            name, url = created
            try:
                runs.append(("PostgreSQL", bench(url, Path(tmp) / "postgres")))
            finally:
                drop_pg_database(name)

    print(
        f"\nbench/cases_api.py  one uvicorn process (bus and jobs off), load from a separate "
        f"process: {args.concurrency} connections, {args.seconds:g} s per figure after "
        f"{args.warmup:g} s warm-up, median of {args.rounds} rounds, {os.cpu_count()} cores"
    )
    print(f"{'backend':<12}{'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for label, run in runs:
        report(label, run)
    if skipped is not None:
        print(f"{'PostgreSQL':<12}row skipped: {skipped}")


if __name__ == "__main__":
    main()
