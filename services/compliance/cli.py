"""`export` the evidence log to files, and `verify` such files with nothing else.

    python -m services.compliance export --out DIR
    python -m services.compliance verify DIR

The verifier recomputes the hash chain, the Merkle root of every checkpoint's tree size and
checks each Ed25519 signature; it needs only the exported files (no database, no service).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.compliance import domain, merkle, signing
from shared.contracts.envelope import DEFAULT_TENANT


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
                        body = bytes(row["body"])
                        # A purged entry is exported as the leaf hash it left, not as text.
                        purged = domain.is_purged(body)
                        out.write(
                            json.dumps(
                                {
                                    "seq": row["seq"],
                                    "event_id": row["event_id"],
                                    "topic": row["topic"],
                                    "event_type": row["event_type"],
                                    "body": None if purged else body.decode("utf-8"),
                                    "purged_leaf": (
                                        body[len(domain.PURGED_PREFIX) :].hex() if purged else None
                                    ),
                                    "prev_hash": row["prev_hash"],
                                    "entry_hash": row["entry_hash"],
                                    "tenant": row["tenant"],
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


#: Exports with this many entries or more are verified by worker processes.
PARALLEL_MIN_ENTRIES = 100_000
_CHUNK = 5000


def verify_directory(directory: Path, *, workers: int | None = None) -> list[str]:
    """Problems found in an export (empty when everything verifies).

    The entries are read in chunks and checked a chunk at a time (`domain.verify_range`,
    which also recomputes the Merkle nodes every checkpoint's root needs); a large export is
    cut into parts of whole blocks verified by `workers` processes (default: one per CPU)."""
    from datetime import datetime

    problems: list[str] = []
    path = directory / "entries.jsonl"
    starts, total = _part_offsets(path, parts=_worker_count(workers))
    checkpoints = json.loads((directory / "checkpoints.json").read_text())
    sizes = {cp["tree_size"] for cp in checkpoints if 0 < cp["tree_size"] <= total}
    wanted: set[tuple[int, int]] = set().union(
        *(merkle.nodes_read(partial(merkle.range_root, start=0, size=size)) for size in sizes)
    )
    ranges = [
        (first_seq, offset, end)
        for (first_seq, offset), (_, end) in itertools.pairwise([*starts, (0, None)])
    ]
    if len(ranges) > 1:
        # forkserver: forking a process with threads is unsafe; the server imports this once.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            parts = list(
                pool.map(partial(_verify_lines, path, wanted=wanted), *zip(*ranges, strict=True))
            )
    else:
        parts = [_verify_lines(path, 1, 0, None, wanted=wanted)]
    verifier, recomputed = domain.combine_ranges(parts)
    if not verifier.ok:
        problems.append(f"chain broken at entry {verifier.broken_seq}: {verifier.problem}")
    uncovered = _uncovered_purge(path)
    if uncovered is not None:
        problems.append(
            f"chain broken at entry {uncovered}: the entry's content is gone and no logged "
            "purge covers it"
        )
    for cp in checkpoints:
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
        if size > total:
            problems.append(f"checkpoint of size {size}: the export has {total} entries")
        elif merkle.range_root(recomputed, 0, size).hex() != cp["root_hash"]:
            problems.append(f"checkpoint of size {size}: entries do not hash to its root")
    return problems


def _worker_count(workers: int | None) -> int:
    if workers is not None:
        return max(workers, 1)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _entries(lines: Iterable[bytes]) -> Iterator[bytes]:
    return (line for line in lines if line.strip())


def _part_offsets(path: Path, *, parts: int) -> tuple[list[tuple[int, int]], int]:
    """(first seq, byte offset) where each part of whole blocks starts, and the number of
    entries; one part unless the export has PARALLEL_MIN_ENTRIES entries or more."""
    block = 1 << domain.BLOCK_LEVEL
    offsets = [0]
    total = 0
    with path.open("rb") as file:
        entries = _entries(file)
        while True:
            read = sum(1 for _ in itertools.islice(entries, block))
            total += read
            if read < block:
                break
            offsets.append(file.tell())
    if (
        parts < 2
        or total < max(PARALLEL_MIN_ENTRIES, parts * block)
        or "forkserver" not in multiprocessing.get_all_start_methods()
    ):
        return [(1, 0)], total
    # offsets[i] starts block i (a blank line before it is skipped either way).
    blocks = total // block
    firsts = sorted({blocks * part // parts for part in range(parts)})
    return [(first * block + 1, offsets[first]) for first in firsts], total


def _verify_lines(
    path: Path, first_seq: int, offset: int, end: int | None, *, wanted: set[tuple[int, int]]
) -> domain.RangeVerified:
    """The entries of `path` from byte `offset` to `end` (to the end if None), numbered from
    `first_seq`; every leaf is folded, a broken chain does not stop the checkpoint roots."""
    with path.open("rb") as file:
        file.seek(offset)
        lines = _entries(
            iter(file.readline, b"")
            if end is None
            else itertools.takewhile(lambda _: file.tell() <= end, iter(file.readline, b""))
        )

        def chunks() -> Iterator[list[domain.Row]]:
            while batch := list(itertools.islice(lines, _CHUNK)):
                yield [_row(json.loads(line)) for line in batch]

        return domain.verify_range(chunks(), first_seq=first_seq, wanted=wanted, fold_all=True)


def _uncovered_purge(path: Path) -> int | None:
    """`domain.uncovered_purge` over an export (only lines that can matter are parsed)."""
    purged: list[int] = []
    ranges: list[tuple[int, int]] = []
    with path.open("rb") as file:
        for line in _entries(file):
            if b'"purged_leaf": "' in line:
                purged.append(json.loads(line)["seq"])
            elif b'"event_type": "compliance.purged"' in line:
                body = json.loads(line)["body"]
                if body is not None:
                    payload = json.loads(body)["envelope"]["payload"]
                    ranges.extend((int(a), int(b)) for a, b in payload["seq_ranges"])
    return domain.uncovered_purge(purged, ranges) if purged else None


def _row(entry: dict[str, Any]) -> domain.Row:
    leaf = entry.get("purged_leaf")
    return (
        entry["seq"],
        entry["event_id"],
        entry["topic"],
        entry["event_type"],
        domain.PURGED_PREFIX + bytes.fromhex(leaf) if leaf else entry["body"].encode("utf-8"),
        entry["prev_hash"],
        entry["entry_hash"],
        entry.get("tenant", DEFAULT_TENANT),
    )


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
