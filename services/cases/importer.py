"""Bulk import of cases from a core system: CSV or JSONL, streamed, validated row by row.

The file is read lazily (one row at a time, never whole), in chunks of `CHUNK` rows; each
chunk is one transaction that writes its cases, debtors, timeline entries, events and the
job's progress together, so a crash loses at most the chunk in flight and a re-run of the
same file skips what is already there (idempotent by account id: an unchanged row changes
nothing, a changed one updates the open case).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cases import domain, service
from services.cases.models import Case, Debtor, ImportJob, TimelineEntry
from services.cases.schemas import CaseCreate, ImportJobOut, ImportReject
from shared.contracts import build_envelope, canonical_json
from shared.contracts.topics import CASES_EVENTS
from shared.http import NotFound
from shared.outbox import enqueue_many

CHUNK = 1000
DEBTORS = cast(sa.Table, Debtor.__table__)
CASES = cast(sa.Table, Case.__table__)
TIMELINE = cast(sa.Table, TimelineEntry.__table__)
MAX_STORED_REJECTS = 1000

#: Flat columns of an import file, and where each goes in a `CaseCreate`.
COLUMNS: dict[str, tuple[str, ...]] = {
    "account_id": ("account_id",),
    "debtor_ref": ("debtor", "external_ref"),
    "debtor_kind": ("debtor", "kind"),
    "debtor_name": ("debtor", "name"),
    "national_id": ("debtor", "national_id"),
    "phone": ("debtor", "phone"),
    "email": ("debtor", "email"),
    "time_zone": ("debtor", "time_zone"),
    "language": ("debtor", "language"),
    "region": ("debtor", "region"),
    "opted_out_channels": ("debtor", "opted_out_channels"),
    "product": ("product",),
    "currency": ("currency",),
    "principal": ("principal",),
    "interest": ("interest",),
    "fees": ("fees",),
    "due_date": ("due_date",),
    "installment_amount": ("installment_amount",),
    "industry_risk": ("industry_risk",),
    "industry_code": ("industry_code",),
    "collateral_type": ("collateral_type",),
    "collateral_value": ("collateral_value",),
    "small_business": ("small_business",),
    "portfolio": ("portfolio",),
    "tags": ("tags",),
}
REQUIRED = (
    "account_id",
    "debtor_name",
    "time_zone",
    "product",
    "currency",
    "principal",
    "due_date",
)
_FIELD_OF = {".".join(path): column for column, path in COLUMNS.items()}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (unknown format, missing or unknown columns)."""


@dataclass
class Totals:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[ImportReject] = field(default_factory=list)


def detect_format(filename: str, declared: str | None = None) -> str:
    """ "csv" or "jsonl", from the declared format or the file name."""
    fmt = (declared or Path(filename).suffix.lstrip(".")).lower()
    fmt = {"ndjson": "jsonl", "json": "jsonl"}.get(fmt, fmt)
    if fmt not in ("csv", "jsonl"):
        raise ImportFileError(f"cannot tell the format of {filename!r}: use .csv or .jsonl")
    return fmt


def iter_rows(stream: IO[bytes], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, raw row) one at a time; a row that is not even a record comes as the reason
    it is not. CSV row numbers are 1-based data rows (the header is row 0)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_rows(text) if fmt == "csv" else _jsonl_rows(text)
    finally:
        # Hand the byte stream back open: the caller reads its position for progress.
        text.detach()


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise ImportFileError(
            "bad header: "
            + (f"unknown columns {unknown}; " if unknown else "")
            + (f"missing columns {missing}; " if missing else "")
            + f"known columns are {list(COLUMNS)}"
        )
    for number, cells in enumerate(reader, start=1):
        if not cells:
            continue
        if len(cells) != len(header):
            yield number, f"has {len(cells)} cells, the header has {len(header)}"
            continue
        yield number, dict(zip(header, cells, strict=True))


def _jsonl_rows(text: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"is not JSON: {exc.msg} at column {exc.colno}"
            continue
        if not isinstance(record, dict):
            yield number, "is not a JSON object"
            continue
        unknown = [k for k in record if k not in COLUMNS]
        if unknown:
            yield number, f"has unknown fields {unknown}"
            continue
        yield number, record


def to_command(raw: dict[str, Any]) -> CaseCreate | list[tuple[str, str]]:
    """The row as a validated `CaseCreate`, or (column, reason) pairs naming what is wrong."""
    nested: dict[str, Any] = {"debtor": {}}
    email: str | None = None
    for column, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        path = COLUMNS[column]
        if column == "email":
            email = str(value).strip()
            continue
        if column in ("tags", "opted_out_channels") and isinstance(value, str):
            value = [t.strip() for t in value.split(";") if t.strip()]
        if column == "small_business" and isinstance(value, str):
            value = value.strip().lower()
        target = nested
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    if email is not None:
        nested["debtor"]["contact_points"] = [{"kind": "email", "value": email, "type": "personal"}]
    try:
        # Lax on purpose: CSV cells are text ("40", "true"); the API's JSON bodies are strict.
        return CaseCreate.model_validate(nested, strict=False)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            name = ".".join(loc)
            field_name: str | None = _FIELD_OF.get(name) or _FIELD_OF.get(".".join(loc[:2]))
            if field_name is None and loc[:2] == ["debtor", "contact_points"]:
                field_name = "email"
            problems.append((field_name or name or "row", error["msg"]))
        return problems


def row_hash(command: CaseCreate) -> str:
    return hashlib.sha256(canonical_json(command.model_dump(mode="json"))).hexdigest()


class Importer:
    """Imports one file into the cases database, as records of `tenant`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        tenant: str,
        policy: service.Policy,
        clock: Callable[[], datetime],
        rejects_out: IO[str] | None = None,
        job_id: uuid.UUID | None = None,
        on_progress: Callable[[Totals, int], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.tenant = tenant
        self.policy = policy
        self.clock = clock
        self.rejects_writer = csv.writer(rejects_out) if rejects_out is not None else None
        if self.rejects_writer is not None:
            self.rejects_writer.writerow(["row", "field", "reason"])
        self.job_id = job_id
        self.on_progress = on_progress
        self.totals = Totals()
        self._analyze_at = CHUNK

    def _reject(self, row: int, column: str, reason: str, *, first: bool = True) -> None:
        """Write a reject line; a row with several problems gets a line each but counts once."""
        self.totals.rejected += 1 if first else 0
        if len(self.totals.rejects) < MAX_STORED_REJECTS:
            self.totals.rejects.append(ImportReject(row=row, field=column, reason=reason))
        if self.rejects_writer is not None:
            self.rejects_writer.writerow([row, column, reason])

    async def run(self, stream: IO[bytes], fmt: str) -> Totals:
        """Import every row; returns the totals (rejects are also written to `rejects_out`)."""
        chunk: list[tuple[int, CaseCreate]] = []
        for number, raw in iter_rows(stream, fmt):
            self.totals.read += 1
            if isinstance(raw, str):
                self._reject(number, "row", raw)
            else:
                command = to_command(raw)
                if isinstance(command, list):
                    for index, (column, reason) in enumerate(command):
                        self._reject(number, column, reason, first=index == 0)
                else:
                    chunk.append((number, command))
            if len(chunk) >= CHUNK:
                await self._write(chunk, position=_position(stream))
                chunk = []
        await self._write(chunk, position=_position(stream))
        return self.totals

    async def _write(self, chunk: list[tuple[int, CaseCreate]], *, position: int) -> None:
        ctx = service.Context(
            now=self.clock(),
            correlation_id=f"import-{self.job_id or uuid.uuid4()}",
            tenant=self.tenant,
            policy=self.policy,
        )
        async with self.sessions() as session, session.begin():
            if chunk:
                await self._write_chunk(session, chunk, ctx)
            if self.job_id is not None:
                await session.execute(
                    sa.update(ImportJob)
                    .where(ImportJob.id == self.job_id, ImportJob.tenant == self.tenant)
                    .values(
                        status="running",
                        bytes_done=position,
                        rows_read=self.totals.read,
                        rows_created=self.totals.created,
                        rows_updated=self.totals.updated,
                        rows_unchanged=self.totals.unchanged,
                        rows_rejected=self.totals.rejected,
                        rejects=[r.model_dump() for r in self.totals.rejects],
                    )
                )
        await self._refresh_statistics()
        if self.on_progress is not None:
            self.on_progress(self.totals, position)

    async def _refresh_statistics(self) -> None:
        """PostgreSQL plans the existing-account lookup from table statistics. A table that grows
        from empty to 100,000 rows within one import keeps its "tiny table" plan, a sequential
        scan per chunk (quadratic overall: 679 rows/s at 100k), until it is analysed; so analyse
        each time this import has doubled what it wrote."""
        written = self.totals.created + self.totals.updated
        if written < self._analyze_at:
            return
        self._analyze_at = written * 2
        async with self.sessions() as session, session.begin():
            if (await session.connection()).dialect.name == "postgresql":
                await session.execute(sa.text("ANALYZE cases"))
                await session.execute(sa.text("ANALYZE debtors"))
                await session.execute(sa.text("ANALYZE timeline"))

    async def _write_chunk(
        self, session: AsyncSession, chunk: list[tuple[int, CaseCreate]], ctx: service.Context
    ) -> None:
        accepted: list[tuple[int, CaseCreate, str]] = []
        first_row: dict[str, int] = {}
        for number, command in chunk:
            if command.due_date > ctx.today:
                self._reject(number, "due_date", f"{command.due_date} is after today")
                continue
            if command.account_id in first_row:
                self._reject(
                    number,
                    "account_id",
                    f"{command.account_id} appears again "
                    f"(first at row {first_row[command.account_id]})",
                )
                continue
            first_row[command.account_id] = number
            accepted.append((number, command, row_hash(command)))
        if not accepted:
            return
        # By account id alone (its own index), open ones kept here: with `status = 'open'` in
        # SQL, SQLite without statistics walks the (status, priority) index over every open case.
        existing = {
            row.account_id: row
            for row in (
                await session.execute(
                    sa.select(Case.id, Case.account_id, Case.import_hash, Case.status).where(
                        Case.tenant == ctx.tenant, Case.account_id.in_(list(first_row))
                    )
                )
            ).all()
            if row.status == "open"
        }
        refs = {c.debtor.external_ref for _, c, _ in accepted if c.debtor.external_ref}
        debtors: dict[str, dict[str, Any]] = {}
        if refs:
            found = await session.execute(
                sa.select(DEBTORS).where(
                    DEBTORS.c.tenant == ctx.tenant, DEBTORS.c.external_ref.in_(refs)
                )
            )
            debtors = {row.external_ref: dict(row._mapping) for row in found.all()}
        new_debtors: list[dict[str, Any]] = []
        new_cases: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for _number, command, digest in accepted:
            current = existing.get(command.account_id)
            if current is not None:
                if current.import_hash == digest:
                    self.totals.unchanged += 1
                elif await self._update(session, current.id, command, digest, ctx):
                    self.totals.updated += 1
                else:
                    self.totals.unchanged += 1
                continue
            ref = command.debtor.external_ref
            debtor = debtors.get(ref) if ref else None
            if debtor is None:
                debtor = service.debtor_row(command, now=ctx.now, tenant=ctx.tenant)
                new_debtors.append(debtor)
                if ref:
                    debtors[ref] = debtor
            case = service.case_row(command, debtor_id=debtor["id"], ctx=ctx)
            case["import_hash"] = digest
            new_cases.append((case, debtor))
        if new_cases:
            await self._insert(session, new_debtors, new_cases, ctx)
            self.totals.created += len(new_cases)

    async def _insert(
        self,
        session: AsyncSession,
        debtors: list[dict[str, Any]],
        cases: list[tuple[dict[str, Any], dict[str, Any]]],
        ctx: service.Context,
    ) -> None:
        # Core multi-row inserts of plain rows: no ORM object or unit-of-work per row.
        connection = await session.connection()
        if debtors:
            await connection.execute(DEBTORS.insert(), debtors)
        await connection.execute(CASES.insert(), [case for case, _ in cases])
        views = [(_view(case), _view(debtor)) for case, debtor in cases]
        await connection.execute(
            TIMELINE.insert(),
            [
                {
                    "tenant": case.tenant,
                    "case_id": case.id,
                    "kind": "opened",
                    "actor": "import",
                    "summary": f"imported: account {case.account_id}, "
                    f"{case.outstanding} {case.currency}",
                    "data": {"job_id": str(self.job_id) if self.job_id else None},
                    "snapshot": service.case_out(
                        case, debtor, today=ctx.today, policy=ctx.policy
                    ).model_dump(mode="json"),
                    "recorded_at": ctx.now,
                }
                for case, debtor in views
            ],
        )
        await enqueue_many(
            session,
            topic=CASES_EVENTS,
            envelopes=[
                build_envelope(
                    service.case_opened_event(case, debtor, ctx),
                    key=str(case.id),
                    producer=service.PRODUCER,
                    correlation_id=ctx.correlation_id,
                    tenant=case.tenant,
                )
                for case, debtor in views
            ],
        )

    async def _update(
        self,
        session: AsyncSession,
        case_id: uuid.UUID,
        command: CaseCreate,
        digest: str,
        ctx: service.Context,
    ) -> bool:
        """The core system's figures changed: balances, due date and tags follow the file.
        False when nothing visible differs (the row was only written differently)."""
        case, debtor = await service._load(session, case_id, ctx=ctx)
        changed = []
        for name in ("principal", "interest", "fees", "installment_amount", "portfolio"):
            if getattr(case, name) != getattr(command, name):
                setattr(case, name, getattr(command, name))
                changed.append(name)
        case.outstanding = case.principal + case.interest + case.fees
        if case.first_due_date != command.due_date:
            case.first_due_date = command.due_date
            changed.append("due_date")
        tags = sorted(set(command.tags))
        if list(case.tags) != tags:
            case.tags = tags
            changed.append("tags")
        case.due_date = domain.arrears_due_date(
            first_due_date=case.first_due_date,
            installment_amount=case.installment_amount,
            credited=case.paid_total,
        )
        changed += service._roll(case, ctx)
        case.import_hash = digest
        if not changed:
            return False  # the same figures written differently: nothing to record
        await service._record(
            session,
            case=case,
            debtor=debtor,
            ctx=ctx,
            kind="imported_update",
            actor="import",
            summary=f"updated from import: {', '.join(changed)}",
            data={"changed": changed},
            events=[service._case_updated(case, ctx, changed)],
        )
        return True


def _view(row: dict[str, Any]) -> Any:
    """A row read like the ORM object it stands for (what `case_out` and the events read)."""
    return SimpleNamespace(**row)


def _position(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except (OSError, ValueError):
        return 0


# --- jobs (HTTP uploads) -------------------------------------------------------------------------


def job_out(job: ImportJob) -> ImportJobOut:
    return ImportJobOut(
        id=job.id,
        filename=job.filename,
        format=job.format,
        status=job.status,
        bytes_total=job.bytes_total,
        bytes_done=job.bytes_done,
        rows_read=job.rows_read,
        rows_created=job.rows_created,
        rows_updated=job.rows_updated,
        rows_unchanged=job.rows_unchanged,
        rows_rejected=job.rows_rejected,
        rejects=[ImportReject.model_validate(r) for r in job.rejects],
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


async def run_job(
    sessions: async_sessionmaker[AsyncSession],
    *,
    job_id: uuid.UUID,
    tenant: str,
    path: Path,
    fmt: str,
    policy: service.Policy,
    clock: Callable[[], datetime],
) -> None:
    """Import an uploaded file as job `job_id` of `tenant` (whose records the rows become); the
    rejects file (row numbers and reasons, no values) lands beside the upload. The upload is
    deleted when the job ends, however it ends: it holds debtors' personal data in clear,
    which the database only keeps encrypted (and a data-subject erasure could not reach)."""
    rejects_path = path.with_suffix(".rejects.csv")
    status, error = "done", None
    try:
        with path.open("rb") as stream, rejects_path.open("w", newline="") as rejects:
            await Importer(
                sessions,
                tenant=tenant,
                policy=policy,
                clock=clock,
                rejects_out=rejects,
                job_id=job_id,
            ).run(stream, fmt)
    except ImportFileError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # the job row must say it failed, whatever happened
        status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    async with sessions() as session, session.begin():
        await session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.tenant == tenant)
            .values(status=status, error=error, finished_at=clock())
        )


async def find_job(session: AsyncSession, *, job_id: uuid.UUID, tenant: str) -> ImportJob:
    """The tenant's import job; NotFound for another tenant's, as for one that never was."""
    job = await session.scalar(
        sa.select(ImportJob).where(ImportJob.id == job_id, ImportJob.tenant == tenant)
    )
    if job is None:
        raise NotFound(f"no import job {job_id}")
    return job


async def fail_interrupted(session: AsyncSession, *, now: datetime, folder: Path) -> None:
    """Jobs left running by a stopped process, of every tenant: say so (re-uploading the file
    is safe), and delete their uploads from `folder` (personal data in clear, see `run_job`)."""
    interrupted = (
        await session.execute(
            sa.select(ImportJob.id, ImportJob.format).where(
                ImportJob.status.in_(["queued", "running"])
            )
        )
    ).all()
    for job_id, fmt in interrupted:
        await asyncio.to_thread((folder / f"{job_id}.{fmt}").unlink, missing_ok=True)
    await session.execute(
        sa.update(ImportJob)
        .where(ImportJob.status.in_(["queued", "running"]))
        .values(
            status="failed",
            error="interrupted by a restart; upload the file again (rows already imported "
            "are recognised and left unchanged)",
            finished_at=now,
        )
    )


def check_header(stream: IO[bytes], fmt: str) -> None:
    """Fail fast on a file whose first record cannot be read (before a job is queued)."""
    rows = iter_rows(stream, fmt)
    try:
        next(rows)
    except StopIteration:
        if fmt == "jsonl":
            raise ImportFileError("the file has no records") from None
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8 text") from None
