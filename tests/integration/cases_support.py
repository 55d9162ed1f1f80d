"""A cases app on a real database (SQLite or PostgreSQL) with a clock the test controls."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.cases.app import create_app
from services.cases.settings import CasesSettings
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows


class Clock:
    """A settable clock: tests move time forward to pass due dates and grace periods."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @property
    def today(self) -> date:
        return self.now.date()


def case_body(clock: Clock | None = None, **overrides: Any) -> dict[str, Any]:
    today = clock.today if clock else date.today()
    body: dict[str, Any] = {
        "account_id": f"LN-{uuid.uuid4().hex[:12]}",
        "debtor": {"name": "张三", "phone": "+8613800138000", "time_zone": "Asia/Shanghai"},
        "product": "consumer_loan",
        "currency": "CNY",
        "principal": "10000.00",
        "interest": "1000.00",
        "fees": "100.00",
        "due_date": (today - timedelta(days=20)).isoformat(),
        "industry_risk": 40,
    }
    body.update(overrides)
    return body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cases_db(migrated_database: MigratedDatabaseFactory) -> str:
    """A migrated cases database (migrations run outside the event loop)."""
    return migrated_database("cases")


@pytest.fixture
async def cases_app(cases_db: str, clock: Clock, tmp_path: Path) -> AsyncIterator[FastAPI]:
    url = cases_db
    application = create_app(
        CasesSettings(
            database_url=url,
            enable_bus=False,
            enable_jobs=False,
            max_import_bytes=200_000,
            import_dir=str(tmp_path / "imports"),
        )
    )
    application.state.clock = clock
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(cases_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cases_app)
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=transport, base_url="http://cases"
    ) as client:
        yield client


async def open_case(http: httpx.AsyncClient, clock: Clock, **overrides: Any) -> dict[str, Any]:
    response = await http.post("/v1/cases", json=case_body(clock, **overrides))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def events(app: FastAPI, event_type: str | None = None) -> list[dict[str, Any]]:
    """Envelopes staged in the outbox, oldest first (optionally of one type)."""
    query = "SELECT event_type, value FROM outbox ORDER BY id"
    async with app.state.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text(query))).all()
    out = []
    for row in rows:
        value = row.value if isinstance(row.value, bytes | str) else bytes(row.value)
        if event_type is None or row.event_type == event_type:
            out.append(json.loads(value))
    return out


async def count(app: FastAPI, table: str, where: str = "") -> int:
    return await count_rows(app.state.runtime.engine, table, where)


async def snapshot(app: FastAPI) -> dict[str, int]:
    """Row counts of every table a request may write: to prove a refusal wrote nothing."""
    tables = [
        "cases",
        "debtors",
        "holds",
        "payments",
        "promises",
        "plans",
        "notes",
        "timeline",
        "outbox",
        "import_jobs",
    ]
    return {t: await count(app, t) for t in tables}


ProblemCheck = Callable[[httpx.Response, int], dict[str, Any]]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body
