"""Async engine and session helpers that behave the same on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from shared.sqlite import ONE_TRIP_AIOSQLITE

# SQLite only auto-increments INTEGER PRIMARY KEY columns; PostgreSQL gets a real BIGINT.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, foreign keys and real transactions."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("module", ONE_TRIP_AIOSQLITE)  # see shared/sqlite.py
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


#: How long a SQLite transaction waits for the file's write lock (busy_timeout): consumers,
#: relays and jobs retry with back-off anyway and may wait long.
SQLITE_LOCK_WAIT_MS = 30_000
_lock_wait_ms: ContextVar[int] = ContextVar("sqlite_lock_wait_ms", default=SQLITE_LOCK_WAIT_MS)
_BUSY_TIMEOUT = "qs_sqlite_busy_timeout_ms"


@contextmanager
def sqlite_lock_wait(milliseconds: int) -> Iterator[None]:
    """Transactions begun inside wait at most `milliseconds` for SQLite's write lock instead
    of SQLITE_LOCK_WAIT_MS (a request has a client waiting; no effect on PostgreSQL)."""
    token = _lock_wait_ms.set(max(milliseconds, 0))
    try:
        yield
    finally:
        _lock_wait_ms.reset(token)


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; emit BEGIN ourselves. IMMEDIATE takes
    # the write lock up front so two writers queue on busy_timeout instead of failing on upgrade.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_WAIT_MS}")
        cursor.close()
        record.info[_BUSY_TIMEOUT] = SQLITE_LOCK_WAIT_MS

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE is where a writer waits for the lock: set the wait this transaction
        # may spend there, only when it differs from the connection's (a pooled connection
        # serves requests and consumers alike).
        wanted = _lock_wait_ms.get()
        info = connection.connection.info
        if info.get(_BUSY_TIMEOUT) != wanted:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={wanted}")
            info[_BUSY_TIMEOUT] = wanted
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)


class MoneyMinorUnits(TypeDecorator[Decimal]):
    """A Decimal with two places stored as whole minor units (BIGINT): exact on SQLite too,
    where NUMERIC would silently become a float, and still sortable and summable in SQL."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        minor = Decimal(value) * 100
        if minor != minor.to_integral_value():
            raise ValueError(f"{value} has more than two decimal places")
        return int(minor)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(value) / 100).quantize(Decimal("0.01"))


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are aware UTC datetimes in and out, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
