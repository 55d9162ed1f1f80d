"""Shared test fixtures: real databases (SQLite files and PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import EmbeddedBroker
from shared.db import create_engine, session_factory
from tests import auth_support  # noqa: F401  (writes the run's API key file before any app starts)

PG_DSN = os.environ.get("QS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_state: dict[str, str | None] = {}

#: make_database(label) -> SQLAlchemy async URL of a new, empty database on the test's backend.
DatabaseFactory = Callable[[str], str]


def postgres_problem() -> str | None:
    """None if the PostgreSQL server answers, else why not (checked once per run)."""
    if "problem" not in _pg_state:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(PG_DSN, timeout=3)
            await conn.close()

        try:
            asyncio.run(probe())
            _pg_state["problem"] = None
        except Exception as exc:
            _pg_state["problem"] = f"PostgreSQL at {PG_DSN} is not reachable: {exc!r}"
    return _pg_state["problem"]


def require_postgres() -> None:
    """Skip (on a user's machine) or fail (in CI) when PostgreSQL is not there."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tier: {problem}")
    pytest.skip(problem)


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def create_pg_database(label: str) -> tuple[str, str]:
    """Create a fresh database; returns (name, SQLAlchemy async URL)."""
    name = f"qs_test_{label}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each database-backed test runs once on SQLite and once on PostgreSQL."""
    value = str(request.param)
    if value == "postgres":
        require_postgres()
    return value


@pytest.fixture
def make_database(backend: str, tmp_path: Path) -> Iterator[DatabaseFactory]:
    """Creates empty databases on the current backend and drops them afterwards."""
    created: list[str] = []

    def make(label: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'{label}.db'}"
        name, url = create_pg_database(label)
        created.append(name)
        return url

    yield make
    for name in created:
        drop_pg_database(name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test module's `db_url` fixture (a migrated service database)."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker on a free port, with the platform's topics."""
    started = EmbeddedBroker()
    started.start()
    asyncio.run(started.create_topics())
    yield started
    started.stop()
