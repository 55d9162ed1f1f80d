"""Cases' own commands: `import FILE` (bulk import with a progress bar and a rejects file) and
`rotate-keys` (re-encrypt personal fields under the active key id)."""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from services.cases import encryption, importer
from services.cases.settings import CasesSettings
from shared import crypto
from shared.contracts import utc_now
from shared.contracts.envelope import DEFAULT_TENANT, TENANT_PATTERN
from shared.crypto import FieldCipher
from shared.db import create_engine, session_factory
from shared.migrate import upgrade


def import_command(argv: list[str]) -> int:
    """python -m services.cases import FILE [--format csv|jsonl] [--rejects PATH]"""
    from services.cases.app import policy_from

    parser = argparse.ArgumentParser(prog="python -m services.cases import")
    parser.add_argument("file", type=Path, help="CSV (with header) or JSONL of cases")
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
    parser.add_argument(
        "--rejects", type=Path, help="where rejected rows go (default: FILE.rejects.csv)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--tenant",
        default=DEFAULT_TENANT,
        help=f"the tenant the imported records belong to (default: {DEFAULT_TENANT})",
    )
    args = parser.parse_args(argv)
    if re.fullmatch(TENANT_PATTERN, args.tenant) is None:
        parser.error(f"--tenant {args.tenant!r} is not a tenant name ({TENANT_PATTERN})")
    try:
        fmt = importer.detect_format(args.file.name, args.format)
    except importer.ImportFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 2
    settings = CasesSettings()
    crypto.configure(settings.field_cipher())
    upgrade(migrations_dir=Path(__file__).parent / "migrations", url=settings.database_url)
    rejects_path = args.rejects or args.file.with_name(args.file.name + ".rejects.csv")
    size = args.file.stat().st_size
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        disable=args.quiet,
        desc=args.file.name,
        file=sys.stderr,
    )

    def progress(totals: importer.Totals, position: int) -> None:
        bar.update(position - bar.n)
        bar.set_postfix(rows=totals.read, rejected=totals.rejected, refresh=False)

    async def run() -> importer.Totals:
        engine = create_engine(settings.database_url)
        try:
            with args.file.open("rb") as stream, rejects_path.open("w", newline="") as rejects:
                return await importer.Importer(
                    session_factory(engine),
                    tenant=args.tenant,
                    policy=policy_from(settings),
                    clock=utc_now,
                    rejects_out=rejects,
                    on_progress=progress,
                ).run(stream, fmt)
        finally:
            await engine.dispose()

    started = time.perf_counter()
    try:
        totals = asyncio.run(run())
    except importer.ImportFileError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{totals.read} rows in {elapsed:.1f} s ({totals.read / max(elapsed, 1e-9):,.0f} rows/s): "
        f"{totals.created} created, {totals.updated} updated, {totals.unchanged} unchanged, "
        f"{totals.rejected} rejected"
        + (f" (see {rejects_path})" if totals.rejected else "")
        + f"; peak memory {peak_mb:.0f} MB"
    )
    return 0 if totals.rejected == 0 else 1


def rotate_keys_command(argv: list[str]) -> int:
    """python -m services.cases rotate-keys [--batch N]"""
    parser = argparse.ArgumentParser(
        prog="python -m services.cases rotate-keys",
        description="Re-encrypt every encrypted personal field under the active key id "
        "(CASES_FIELD_KEY_ID), one batch per transaction; values already under it are left "
        "alone. Keep the old keys in CASES_FIELD_KEYS until this has finished.",
    )
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    settings = CasesSettings()
    upgrade(migrations_dir=Path(__file__).parent / "migrations", url=settings.database_url)
    progress = asyncio.run(rotate_keys(settings.database_url, settings.field_cipher(), args.batch))
    for table in progress.scanned:
        print(
            f"{table}: {progress.rewritten[table]} of {progress.scanned[table]} rows re-encrypted "
            f"under key id {settings.field_key_id}"
        )
    return 0


async def rotate_keys(url: str, cipher: FieldCipher, batch: int = 500) -> encryption.Progress:
    """Re-encrypt every stale value under `cipher`'s active key, `batch` rows a transaction."""
    engine = create_engine(url)
    progress = encryption.Progress()
    try:
        for table, step in encryption.STEPS.items():
            after: Any = None
            while True:
                async with engine.begin() as conn:
                    after, scanned, rewritten = await conn.run_sync(step, cipher, after, batch)
                progress.add(table, scanned, rewritten)
                if scanned < batch:
                    break
    finally:
        await engine.dispose()
    return progress
