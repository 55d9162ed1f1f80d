"""shared/sqlite.py: the one-trip aiosqlite cursor behaves as a DB-API cursor must for
SQLAlchemy (rows, description, rowcount, lastrowid, executemany, errors, savepoints,
streaming), and engines from shared.db use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from shared.db import create_engine, session_factory
from shared.sqlite import OneTripCursor


async def test_engines_use_the_one_trip_cursor_and_it_behaves(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)  # type: ignore[union-attr]
            await conn.execute(
                sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)")
            )
            inserted = await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
            assert (inserted.rowcount, inserted.lastrowid) == (1, 1)
            await conn.execute(
                sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"b{i}"} for i in range(50)]
            )
            updated = await conn.execute(sa.text("UPDATE t SET v = v || '!' WHERE id > 40"))
            assert updated.rowcount == 11
            result = await conn.execute(sa.text("SELECT id, v FROM t ORDER BY id"))
            assert list(result.keys()) == ["id", "v"]
            rows = result.all()
            assert (len(rows), rows[0], rows[-1]) == (51, (1, "a"), (51, "b49!"))
            streamed = await conn.stream(sa.text("SELECT id FROM t ORDER BY id"))
            assert [row.id async for row in streamed] == list(range(1, 52))
            with pytest.raises(exc.IntegrityError):
                await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            savepoint = await session.begin_nested()
            await session.execute(sa.text("DELETE FROM t"))
            await savepoint.rollback()
            assert await session.scalar(sa.text("SELECT count(*) FROM t")) == 51
        with pytest.raises(exc.OperationalError):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()
