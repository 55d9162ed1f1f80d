"""Bulk import: 100,000 generated cases through the real importer (validation, debtors, cases,
timeline and `case.opened` events, one transaction per 1,000 rows), next to a raw batched
insert of the same debtor and case rows into the same kind of database in the same run.
Target: import >= 50% of the raw insert's rows/s. Also prints the re-run (every row
unchanged) and the peak memory, which stays flat because the file is streamed.

Runs on SQLite and, when it answers on 127.0.0.1:5432, PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from services.cases import importer, service  # noqa: E402
from shared.contracts.envelope import DEFAULT_TENANT  # noqa: E402
from shared.db import create_engine, session_factory  # noqa: E402
from shared.migrate import upgrade  # noqa: E402

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
MIGRATIONS = ROOT / "services" / "cases" / "migrations"
TARGET = 0.50


def write_file(path: Path, rows: int) -> None:
    """A core-system extract: two accounts per debtor, realistic spread of amounts and DPD."""
    today = datetime.now(UTC).date()
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "account_id",
                "debtor_ref",
                "debtor_name",
                "national_id",
                "phone",
                "time_zone",
                "language",
                "region",
                "product",
                "currency",
                "principal",
                "interest",
                "fees",
                "due_date",
                "industry_risk",
                "portfolio",
                "tags",
            ]
        )
        for n in range(rows):
            writer.writerow(
                [
                    f"ACC-{n:08d}",
                    f"CUST-{n // 2:08d}",
                    f"Debtor {n // 2}",
                    f"3101{n:014d}",
                    f"+86138{n % 100_000_000:08d}",
                    "Asia/Shanghai",
                    "zh",
                    "CN-31",
                    "credit_card" if n % 3 else "consumer_loan",
                    "CNY",
                    f"{500 + (n * 37) % 50_000}.00",
                    f"{(n * 7) % 900}.50",
                    "0",
                    (today - timedelta(days=1 + n % 200)).isoformat(),
                    20 + n % 60,
                    f"book-{n % 4}",
                    "imported;2026q4",
                ]
            )


async def run_import(url: str, path: Path) -> tuple[float, importer.Totals]:
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        with path.open("rb") as stream:
            totals = await importer.Importer(
                session_factory(engine),
                tenant=DEFAULT_TENANT,
                policy=service.DEFAULT_POLICY,
                clock=lambda: datetime.now(UTC),
            ).run(stream, "csv")
        return time.perf_counter() - started, totals
    finally:
        await engine.dispose()


def raw_rows(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same debtors and cases as plain column dicts, built before the clock starts."""
    now = datetime.now(UTC)
    ctx = service.Context(now=now, correlation_id="bench", tenant=DEFAULT_TENANT)
    debtors: dict[str, dict[str, Any]] = {}
    cases: list[dict[str, Any]] = []
    with path.open("rb") as stream:
        for _number, raw in importer.iter_rows(stream, "csv"):
            assert isinstance(raw, dict)
            command = importer.to_command(raw)
            assert not isinstance(command, list)
            ref = command.debtor.external_ref or ""
            if ref not in debtors:
                debtors[ref] = service.debtor_row(command, now=now, tenant=DEFAULT_TENANT)
            cases.append(service.case_row(command, debtor_id=debtors[ref]["id"], ctx=ctx))
    return list(debtors.values()), cases


async def raw_insert(url: str, debtors: list[dict[str, Any]], cases: list[dict[str, Any]]) -> float:
    """Multi-row inserts of the same rows, 1,000 cases (and their debtors) per transaction."""
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        chunk = importer.CHUNK
        for i in range(0, len(cases), chunk):
            async with engine.begin() as conn:
                await conn.execute(importer.DEBTORS.insert(), debtors[i // 2 : (i + chunk) // 2])
                await conn.execute(importer.CASES.insert(), cases[i : i + chunk])
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def pg_database() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except Exception as exc:
        print(f"PostgreSQL rows skipped: {exc!r}")
        return None
    name = f"bench_import_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop_pg(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def backend_urls(kind: str, folder: Path, label: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{folder / f'{label}.db'}", None
    name = asyncio.run(pg_database())
    if name is None:
        return "", None
    return f"{PG_BASE_URL}/{name}", name


def cli_rerun(url: str, source: Path, folder: Path) -> tuple[float, str, float]:
    """`python -m services.cases import FILE` on the already imported file, in a child process:
    its time, its summary line and the peak memory it reports (flat: the reader streams)."""
    env = {**os.environ, "CASES_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "services.cases", "import", "--quiet", str(source)],
        env=env, capture_output=True, text=True, cwd=folder, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    found = re.search(r"peak memory (\d+) MB", done.stdout)
    return elapsed, done.stdout + done.stderr, float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "book.csv"
        write_file(source, args.rows)
        size_mb = source.stat().st_size / 1e6
        print(
            f"bulk import of {args.rows:,} cases ({size_mb:.1f} MB CSV), 1,000 rows a transaction"
        )
        debtors, cases = raw_rows(source)
        for kind in args.backends.split(","):
            import_url, import_db = backend_urls(kind, folder, "import")
            if not import_url:
                continue
            raw_url, raw_db = backend_urls(kind, folder, "raw")
            try:
                upgrade(migrations_dir=MIGRATIONS, url=import_url)
                upgrade(migrations_dir=MIGRATIONS, url=raw_url)
                raw_s = asyncio.run(raw_insert(raw_url, debtors, cases))
                import_s, totals = asyncio.run(run_import(import_url, source))
                rerun_s, rerun_out, peak_mb = cli_rerun(import_url, source, folder)
            finally:
                for name in (import_db, raw_db):
                    if name:
                        asyncio.run(drop_pg(name))
            assert totals.created == args.rows, totals
            assert f"{args.rows} unchanged" in rerun_out, rerun_out
            raw_rate, import_rate = args.rows / raw_s, args.rows / import_s
            ratio = import_rate / raw_rate
            verdict = "meets" if ratio >= TARGET else "BELOW"
            print(f"  {kind:<10} raw batched insert (debtors + cases)    {raw_rate:>10,.0f} rows/s")
            print(
                f"  {kind:<10} import (validated, timeline, events) {import_rate:>10,.0f} rows/s"
                f"   ratio to raw {ratio:.2f} (target >= {TARGET:.2f}, {verdict})"
            )
            print(
                f"  {kind:<10} re-run by the CLI, all unchanged          "
                f"{args.rows / rerun_s:>7,.0f} rows/s (process start included)"
            )
            print(f"  {kind:<10} CLI peak resident memory (streamed)     {peak_mb:>7.0f} MB")


if __name__ == "__main__":
    main()
