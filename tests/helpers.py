"""Small helpers shared by tests: migrated service databases and row counts."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import is_sqlite
from shared.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def migrate_service(service: str, url: str) -> str:
    """Give the new, empty database at `url` the service's schema at head; returns the URL.

    On SQLite the migrations run once per run and service, into a template file that each
    later database is a copy of: five hundred tests each re-running every revision cost a
    minute of `make test`. (On PostgreSQL `CREATE DATABASE … TEMPLATE` measured no faster than
    running the revisions, so they run each time.)"""
    if not is_sqlite(url):
        upgrade(migrations_dir=_migrations(service), url=url)
        return url
    target = Path(sa.make_url(url).database or "")
    if target.exists() and target.stat().st_size > 0:
        raise ValueError(f"{target} is not a new database")
    shutil.copyfile(_sqlite_template(service), target)
    return url


_sqlite_templates: dict[str, Path] = {}
_template_folder: list[tempfile.TemporaryDirectory[str]] = []


def _sqlite_template(service: str) -> Path:
    if service not in _sqlite_templates:
        if not _template_folder:
            _template_folder.append(tempfile.TemporaryDirectory(prefix="qs-templates-"))
        path = Path(_template_folder[0].name) / f"{service}.db"
        upgrade(migrations_dir=_migrations(service), url=f"sqlite+aiosqlite:///{path}")
        # A copy of the main file alone must be the whole database: fold the WAL back into it.
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _sqlite_templates[service] = path
    return _sqlite_templates[service]


def _migrations(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


async def count_rows(engine: AsyncEngine, table: str, where: str = "") -> int:
    """Rows in `table` (optionally filtered by a literal SQL condition)."""
    async with engine.connect() as conn:
        query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int((await conn.execute(sa.text(query))).scalar_one())
