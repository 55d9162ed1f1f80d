"""SQLite's one writer taken for too long: a request gets 503 with Retry-After after
`request_db_wait_s`, not after the 30 s busy timeout (nor 30 s more for each request queued
before it), and writes nothing; background work keeps its long wait. SQLite only: PostgreSQL
has no single writer (an unreachable server is refused at once, see tests/e2e/test_faults.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from services.cases.app import create_app
from services.cases.settings import CasesSettings
from shared.db import SQLITE_LOCK_WAIT_MS, create_engine, sqlite_lock_wait
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows
from tests.integration.test_cases_api import case_body

WAIT_S = 1.5


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def cases_url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("cases")


@pytest.fixture
async def app(cases_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(
        CasesSettings(database_url=cases_url, enable_bus=False, request_db_wait_s=WAIT_S)
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://cases"
    ) as http:
        yield http


@asynccontextmanager
async def file_locked(url: str) -> AsyncIterator[None]:
    """Another process's writer (a backup, a stuck tool) holding the database's write lock,
    taken off the event loop: the app's own jobs may hold it for a moment first."""
    path = Path(str(make_url(url).database))
    other = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0


async def test_a_request_waits_its_bound_for_a_locked_file_then_gets_503_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, cases_url: str
) -> None:
    body = case_body()
    async with file_locked(cases_url):
        asked = time.monotonic()
        refused = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": "k-1"})
        waited = time.monotonic() - asked
    assert_busy(refused)
    # It waited for the lock (the whole seconds left of its bound), not the 30 s busy timeout.
    assert 0.8 <= waited < WAIT_S + 2, waited
    assert await count_rows(app.state.runtime.engine, "cases") == 0
    retried = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": "k-1"})
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("Idempotent-Replayed") != "true"  # the refusal kept nothing


async def test_requests_queued_behind_a_stuck_writer_each_wait_one_bound_not_in_turn(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The writer slot of this process held (a consumer batch stuck on the lock): five
    requests at once all get their 503 within one bound, then are served once it frees."""
    gate = app.state.runtime.request_gate
    await gate.acquire()
    try:
        asked = time.monotonic()
        refused = await asyncio.gather(
            *(client.post("/v1/cases", json=case_body()) for _ in range(5))
        )
        waited = time.monotonic() - asked
    finally:
        gate.release()
    for response in refused:
        assert_busy(response)
        assert response.json()["type"] == "https://qingshou.dev/problems/database-busy"
    assert waited < WAIT_S + 2, waited
    assert await count_rows(app.state.runtime.engine, "cases") == 0
    served = await client.post("/v1/cases", json=case_body())
    assert served.status_code == 201, served.text


async def test_the_short_wait_is_for_requests_only_on_the_same_pooled_connection(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", pool_size=1)
    query = sa.text("PRAGMA busy_timeout")
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(query)).scalar_one() == SQLITE_LOCK_WAIT_MS
        with sqlite_lock_wait(1234):
            async with engine.begin() as conn:
                assert (await conn.execute(query)).scalar_one() == 1234
        async with engine.begin() as conn:
            assert (await conn.execute(query)).scalar_one() == SQLITE_LOCK_WAIT_MS
    finally:
        await engine.dispose()
