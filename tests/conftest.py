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
from tests.helpers import migrate_service

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


def _admin(sql: str, *, database: str | None = None) -> None:
    """Run `sql` on the server's own database, or on `database`."""
    import asyncpg

    dsn = PG_DSN if database is None else f"{PG_DSN.rsplit('/', 1)[0]}/{database}"

    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def create_pg_database(label: str) -> tuple[str, str]:
    """Create a fresh database; returns (name, SQLAlchemy async URL)."""
    name = f"qs_test_{label}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    return name, _url_of(name)


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


#: migrated_database(service, label=service) -> URL of an empty database with the service's
#: schema at head, on the test's backend.
MigratedDatabaseFactory = Callable[..., str]


class PostgresPool:
    """Migrated PostgreSQL databases kept for the run: a test takes one, and gives it back
    emptied (TRUNCATE). Creating, migrating and dropping a database for each of some two
    hundred tests took 0.5–3 s a test."""

    def __init__(self) -> None:
        self.free: dict[str, list[str]] = {}
        self.every: list[str] = []

    def take(self, service: str) -> str:
        free = self.free.setdefault(service, [])
        if free:
            return free.pop()
        name, url = create_pg_database(f"pool_{service}")
        self.every.append(name)
        migrate_service(service, url)
        return name

    def give_back(self, service: str, name: str) -> None:
        """Empty the database and keep it, or drop it if it cannot be emptied."""
        try:
            _admin(_EMPTY_ALL_TABLES, database=name)
        except Exception:
            drop_pg_database(name)
            self.every.remove(name)
            return
        self.free.setdefault(service, []).append(name)

    def drop_all(self) -> None:
        for name in self.every:
            drop_pg_database(name)


_EMPTY_ALL_TABLES = """
DO $$
DECLARE tables text;
BEGIN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid();
    SELECT string_agg(format('%I', tablename), ', ') INTO tables
        FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version';
    SET LOCAL lock_timeout = '5s';
    IF tables IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || tables || ' RESTART IDENTITY CASCADE';
    END IF;
END $$;
"""


@pytest.fixture(scope="session")
def postgres_pool() -> Iterator[PostgresPool]:
    pool = PostgresPool()
    yield pool
    pool.drop_all()


@pytest.fixture
def migrated_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MigratedDatabaseFactory]:
    """Empty databases with a service's schema at head (call outside the event loop): on
    SQLite a copy of a file migrated once per run; on PostgreSQL one from `postgres_pool`."""
    pool: PostgresPool | None = (
        request.getfixturevalue("postgres_pool") if backend == "postgres" else None
    )
    taken: list[tuple[str, str]] = []

    def make(service: str, label: str | None = None) -> str:
        if pool is None:
            path = tmp_path / f"{label or service}.db"
            return migrate_service(service, f"sqlite+aiosqlite:///{path}")
        name = pool.take(service)
        taken.append((service, name))
        return _url_of(name)

    yield make
    for service, name in taken:
        assert pool is not None
        pool.give_back(service, name)


def _url_of(database: str) -> str:
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


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
