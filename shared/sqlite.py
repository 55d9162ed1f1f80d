"""SQLite through aiosqlite in one trip per statement.

aiosqlite runs sqlite3 in a thread of its own, and every call is a round trip to it (a queue
put, a thread wake-up, a callback into the event loop). SQLAlchemy's adapter makes three or
four per statement: create the cursor, execute, fetch, close. On the virtual machines this
project runs on a round trip costs a quarter of a millisecond or more, so the trips, not
SQLite, were most of every SQLite transaction's time (measured: `select 1` at 787 µs).

`ONE_TRIP_AIOSQLITE` is the same DB-API adapter with a cursor that does all of a statement's
work in one trip: execute, read the description, fetch every row (what SQLAlchemy's own
adapter fetches eagerly too), note rowcount and lastrowid, close. Engines get it through
`create_async_engine(..., module=...)`, a documented parameter, so nothing global is patched.
Server-side (streaming) cursors are SQLAlchemy's own, unchanged.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

Description = tuple[tuple[Any, ...], ...] | None
Trip = tuple[Description, list[Any], int, int | None]


def _statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Trip:
    """All of one statement, run in aiosqlite's thread."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is one trip to aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # Not the base __init__: it opens an aiosqlite cursor (a trip) this class never uses.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized: Any = {}
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor is already closed; rows stay buffered

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            description, rows, rowcount, lastrowid = await self._connection._execute(
                _statement, self._connection._conn, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        raise NotImplementedError("sqlite3 has one result set per statement")

    def setinputsizes(self, *inputsizes: Sequence[Any]) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API adapter, handing out `OneTripConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            connection = self.aiosqlite.connect(*arg, **kw)
            # As SQLAlchemy does: the thread must not keep the interpreter alive.
            thread = connection if isinstance(connection, Thread) else connection._thread
            thread.daemon = True
        return OneTripConnection(self, await_(connection))


ONE_TRIP_AIOSQLITE = OneTripDbapi(aiosqlite, sqlite3)
