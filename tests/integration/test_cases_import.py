"""Bulk import: streamed CSV/JSONL, row-level rejects, idempotent re-runs, the HTTP job and
the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.cases import importer
from tests.helpers import ROOT
from tests.integration.cases_support import (
    Clock,
    cases_app,
    cases_db,
    clock,
    count,
    events,
    http,
    problem,
    snapshot,
)

__all__ = ["cases_app", "cases_db", "clock", "http"]  # fixtures

HEADER = ["account_id", "debtor_ref", "debtor_name", "time_zone", "language", "product",
          "currency", "principal", "interest", "fees", "due_date", "tags", "email"]  # fmt: skip


def good_row(clock: Clock, n: int, **change: str) -> dict[str, str]:
    row = {
        "account_id": f"IMP-{n:06d}",
        "debtor_ref": f"CUST-{n // 2:06d}",  # two accounts per debtor
        "debtor_name": f"Debtor {n}",
        "time_zone": "Asia/Shanghai",
        "language": "zh",
        "product": "credit_card",
        "currency": "CNY",
        "principal": f"{1000 + n}.00",
        "interest": "12.50",
        "fees": "0",
        "due_date": (clock.today - timedelta(days=10 + n % 50)).isoformat(),
        "tags": "imported;q4",
        "email": f"d{n}@example.com",
    }
    row.update(change)
    return row


def csv_bytes(rows: list[dict[str, str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def bad_rows(clock: Clock) -> list[tuple[dict[str, str], str]]:
    """(row, the column its reject must name)."""
    return [
        (good_row(clock, 900, currency="XYZ"), "currency"),
        (good_row(clock, 901, debtor_name=""), "debtor_name"),
        (good_row(clock, 902, due_date="2026-02-30"), "due_date"),
        (good_row(clock, 903, principal="-4"), "principal"),
        (good_row(clock, 904, time_zone="Mars/Base"), "time_zone"),
        (good_row(clock, 905, email="not-an-email"), "email"),
        (good_row(clock, 906, due_date=(clock.today + timedelta(days=3)).isoformat()), "due_date"),
    ]


async def wait_for_job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = (await http.get(f"/v1/imports/{job_id}")).json()
        if job["status"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish")


async def test_upload_imports_good_rows_rejects_bad_ones_and_reruns_change_nothing(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    good = [good_row(clock, n) for n in range(30)]
    bad = bad_rows(clock)
    rows = good[:10] + [r for r, _ in bad] + good[10:]
    body = csv_bytes(rows)
    uploaded = await http.post(
        "/v1/imports",
        params={"filename": "book.csv"},
        content=body,
        headers={"content-type": "text/csv"},
    )
    assert uploaded.status_code == 202, uploaded.text
    assert uploaded.headers["location"] == f"/v1/imports/{uploaded.json()['id']}"
    job = await wait_for_job(http, uploaded.json()["id"])
    assert job["status"] == "done", job
    assert (job["rows_read"], job["rows_created"], job["rows_rejected"]) == (37, 30, 7)
    assert job["bytes_done"] == job["bytes_total"] == len(body)
    rejected = {(r["row"], r["field"]) for r in job["rejects"]}
    assert rejected == {(11 + i, column) for i, (_, column) in enumerate(bad)}

    rejects = await http.get(f"/v1/imports/{job['id']}/rejects")
    assert rejects.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(rejects.text)))
    assert lines[0] == ["row", "field", "reason"]
    assert {(int(r), f) for r, f, _ in lines[1:]} == rejected
    # The upload (debtors' personal data in clear) is deleted once imported; the rejects
    # file (row numbers and reasons) stays for the operator.
    assert files_in(Path(cases_app.state.runtime.settings.import_dir)) == [
        f"{job['id']}.rejects.csv"
    ]

    assert await count(cases_app, "cases") == 30
    assert await count(cases_app, "debtors") == 15  # accounts share debtors by debtor_ref
    assert len(await events(cases_app, "case.opened")) == 30
    page = (await http.get("/v1/cases", params={"account_id": "IMP-000003"})).json()
    [case] = page["items"]
    assert case["tags"] == ["imported", "q4"]
    # accounts 2 and 3 share debtor CUST-000001: the first row to name it made it
    assert case["debtor"]["contact_points"][0]["value"] == "d2@example.com"
    timeline = (await http.get(f"/v1/cases/{case['id']}/timeline")).json()["entries"]
    assert [e["kind"] for e in timeline] == ["opened"]

    before = await snapshot(cases_app)
    again = await http.post(
        "/v1/imports", params={"filename": "book.csv"}, content=body,
        headers={"content-type": "text/csv"},
    )  # fmt: skip
    rerun = await wait_for_job(http, again.json()["id"])
    assert (rerun["rows_created"], rerun["rows_updated"], rerun["rows_unchanged"]) == (0, 0, 30)
    after = await snapshot(cases_app)
    assert {k: v for k, v in after.items() if k != "import_jobs"} == {
        k: v for k, v in before.items() if k != "import_jobs"
    }

    changed = [good_row(clock, 3, principal="5.00")]
    update = await http.post(
        "/v1/imports", params={"filename": "fix.csv"}, content=csv_bytes(changed),
        headers={"content-type": "text/csv"},
    )  # fmt: skip
    fixed = await wait_for_job(http, update.json()["id"])
    assert fixed["rows_updated"] == 1
    [updated] = await events(cases_app, "case.updated")
    assert "principal" in updated["payload"]["changed"]
    assert updated["payload"]["amount_outstanding"] == "17.50"


async def test_jsonl_upload_with_broken_lines(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    lines = [json.dumps(good_row(clock, n)) for n in range(5)]
    lines.insert(2, '{"account_id": "IMP-X", ')  # cut short
    lines.insert(4, "[1, 2]")
    lines.insert(5, json.dumps({**good_row(clock, 99), "colour": "red"}))
    body = ("\n".join(lines) + "\n").encode()
    uploaded = await http.post(
        "/v1/imports", params={"filename": "book.jsonl"}, content=body,
        headers={"content-type": "application/x-ndjson"},
    )  # fmt: skip
    job = await wait_for_job(http, uploaded.json()["id"])
    assert (job["rows_created"], job["rows_rejected"]) == (5, 3)
    reasons = {r["row"]: r["reason"] for r in job["rejects"]}
    assert "not JSON" in reasons[3]
    assert "not a JSON object" in reasons[5]
    assert "colour" in reasons[6]


async def test_refused_uploads_write_nothing(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    before = await snapshot(cases_app)
    oversized = b"x" * 200_001
    too_big = await http.post(
        "/v1/imports", params={"filename": "big.csv"}, content=oversized,
        headers={"content-type": "text/csv"},
    )  # fmt: skip
    assert problem(too_big, 413)["type"].endswith("/body-too-large")
    bad_header = await http.post(
        "/v1/imports", params={"filename": "b.csv"},
        content=b"account,name\n1,2\n", headers={"content-type": "text/csv"},
    )  # fmt: skip
    detail = problem(bad_header, 400)["detail"]
    assert "unknown columns ['account', 'name']" in detail
    assert "missing columns" in detail
    empty = await http.post(
        "/v1/imports", params={"filename": "e.csv"}, content=b"",
        headers={"content-type": "text/csv"},
    )  # fmt: skip
    problem(empty, 400)
    unknown = await http.post(
        "/v1/imports", params={"filename": "book.xlsx"}, content=b"PK..",
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    problem(unknown, 415)
    problem(await http.post("/v1/imports", content=b"a"), 422)  # no filename
    assert await snapshot(cases_app) == before
    problem(await http.get("/v1/imports/6a9b1c2e-0000-4000-8000-000000000000"), 404)


def test_cli_imports_with_progress_and_a_rejects_file(
    cases_db: str, tmp_path: Path, clock: Clock
) -> None:
    rows = [good_row(clock, n) for n in range(2500)] + [r for r, _ in bad_rows(clock)[:2]]
    source = tmp_path / "book.csv"
    source.write_bytes(csv_bytes(rows))
    env = {**os.environ, "CASES_DATABASE_URL": cases_db, "PYTHONPATH": str(ROOT)}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cases", "import", str(source)],
            env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )  # fmt: skip

    first = run()
    assert first.returncode == 1, first.stderr  # 1: some rows were rejected
    assert "2502 rows" in first.stdout, first.stdout
    assert "2500 created" in first.stdout
    assert "2 rejected" in first.stdout
    assert "book.csv" in first.stderr
    assert "100%" in first.stderr
    rejects = (tmp_path / "book.csv.rejects.csv").read_text().splitlines()
    assert rejects[0] == "row,field,reason"
    assert len(rejects) == 3
    second = run()
    assert "0 created, 0 updated, 2500 unchanged" in second.stdout, second.stdout


def test_rows_are_read_one_at_a_time() -> None:
    """The reader is lazy: the first row comes before the rest of the stream is read."""

    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.served = 0
            self.head = b"account_id,debtor_name,time_zone,product,currency,principal,due_date\n"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self.head if self.served == 0 else b"A,B,UTC,p,CNY,1.00,2026-01-01\n" * 100
            self.served += 1
            buffer[: len(chunk)] = chunk
            return len(chunk)

    rows = importer.iter_rows(io.BufferedReader(Endless()), "csv")
    number, first = next(rows)
    assert number == 1
    assert isinstance(first, dict)
    assert first["account_id"] == "A"


@pytest.mark.parametrize(
    ("name", "declared", "expected"),
    [("a.csv", None, "csv"), ("a.JSONL", None, "jsonl"), ("a.ndjson", None, "jsonl"),
     ("a.txt", "csv", "csv")],
)  # fmt: skip
def test_format_detection(name: str, declared: str | None, expected: str) -> None:
    assert importer.detect_format(name, declared) == expected


async def test_uploads_of_interrupted_jobs_are_deleted_at_startup(
    cases_app: FastAPI, clock: Clock
) -> None:
    """A job cut off by a restart is marked failed, and its upload (personal data in clear)
    is deleted with it; a finished job's rejects file stays."""
    import uuid

    from services.cases.models import ImportJob

    folder = Path(cases_app.state.runtime.settings.import_dir)
    cut_off, finished = uuid.uuid4(), uuid.uuid4()
    write_files(
        folder,
        {
            f"{cut_off}.csv": "account_id,debtor_name\nA-1,张三\n",
            f"{finished}.rejects.csv": "row,field,reason\n",
        },
    )
    async with cases_app.state.runtime.sessions() as session, session.begin():
        for job_id, status in ((cut_off, "running"), (finished, "done")):
            session.add(
                ImportJob(
                    id=job_id,
                    tenant="default",
                    filename="book.csv",
                    format="csv",
                    status=status,
                    bytes_total=1,
                    bytes_done=0,
                    rows_read=0,
                    rows_created=0,
                    rows_updated=0,
                    rows_unchanged=0,
                    rows_rejected=0,
                    rejects=[],
                    created_at=clock(),
                )
            )
    async with cases_app.state.runtime.sessions() as session, session.begin():
        await importer.fail_interrupted(session, now=clock(), folder=folder)
        statuses = {
            job.id: job.status for job in (await session.scalars(sa.select(ImportJob))).all()
        }
    assert statuses == {cut_off: "failed", finished: "done"}
    assert files_in(folder) == [f"{finished}.rejects.csv"]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def write_files(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
