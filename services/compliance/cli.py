"""`export` the evidence log to files, and `verify` such files with nothing else.

    python -m services.compliance export --out DIR
    python -m services.compliance verify DIR

The verifier recomputes the hash chain, the Merkle root of every checkpoint's tree size and
checks each Ed25519 signature; it needs only the exported files (no database, no service).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import sqlalchemy as sa

from services.compliance import domain, merkle, signing


def export_command(argv: list[str]) -> int:
    from services.compliance.models import AuditEntry, Checkpoint
    from services.compliance.settings import ComplianceSettings
    from shared.db import create_engine

    parser = argparse.ArgumentParser(prog="python -m services.compliance export")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    async def run() -> tuple[int, int]:
        engine = create_engine(ComplianceSettings().database_url)
        try:
            async with engine.connect() as conn:
                entries = 0
                with (args.out / "entries.jsonl").open("w", encoding="utf-8") as out:
                    result = await conn.stream(sa.select(AuditEntry).order_by(AuditEntry.seq))
                    async for row in result.mappings():
                        out.write(
                            json.dumps(
                                {
                                    "seq": row["seq"],
                                    "event_id": row["event_id"],
                                    "topic": row["topic"],
                                    "event_type": row["event_type"],
                                    "body": bytes(row["body"]).decode("utf-8"),
                                    "prev_hash": row["prev_hash"],
                                    "entry_hash": row["entry_hash"],
                                },
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                        entries += 1
                checkpoints = [
                    {
                        "tree_size": r["tree_size"],
                        "root_hash": r["root_hash"],
                        "issued_at": r["issued_at"].isoformat(),
                        "key_id": r["key_id"],
                        "public_key": r["public_key"],
                        "signature": r["signature"],
                    }
                    for r in (
                        await conn.execute(sa.select(Checkpoint).order_by(Checkpoint.id))
                    ).mappings()
                ]
                (args.out / "checkpoints.json").write_text(json.dumps(checkpoints, indent=1))
                return entries, len(checkpoints)
        finally:
            await engine.dispose()

    entries, checkpoints = asyncio.run(run())
    print(f"exported {entries} entries and {checkpoints} checkpoints to {args.out}")
    return 0


def verify_directory(directory: Path) -> list[str]:
    """Problems found in an export (empty when everything verifies)."""
    from datetime import datetime

    problems: list[str] = []
    entries = [
        json.loads(line)
        for line in (directory / "entries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    verifier = domain.ChainVerifier()
    verifier.feed(
        domain.StoredEntry(
            e["seq"],
            e["event_id"],
            e["topic"],
            e["event_type"],
            e["body"].encode("utf-8"),
            e["prev_hash"],
            e["entry_hash"],
        )
        for e in entries
    )
    if not verifier.ok:
        problems.append(f"chain broken at entry {verifier.broken_seq}: {verifier.problem}")
    leaves = [merkle.leaf_hash(e["body"].encode("utf-8")) for e in entries]
    for cp in json.loads((directory / "checkpoints.json").read_text()):
        size = cp["tree_size"]
        message = signing.checkpoint_message(
            tree_size=size,
            root_hash=cp["root_hash"],
            issued_at=datetime.fromisoformat(cp["issued_at"]),
        )
        if not signing.verify(
            public_hex=cp["public_key"], message=message, signature_hex=cp["signature"]
        ):
            problems.append(f"checkpoint of size {size}: signature does not verify")
        if size > len(leaves):
            problems.append(f"checkpoint of size {size}: the export has {len(leaves)} entries")
        elif merkle.root(leaves[:size]).hex() != cp["root_hash"]:
            problems.append(f"checkpoint of size {size}: entries do not hash to its root")
    return problems


def verify_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.compliance verify")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    problems = verify_directory(args.directory)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print("OK: chain intact, every checkpoint's root and signature verify")
    return 1 if problems else 0


COMMANDS = {"export": export_command, "verify": verify_command}
