"""Small helpers shared by tests: migrated service databases and row counts."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def migrate_service(service: str, url: str) -> str:
    """Run a service's Alembic migrations on `url`; returns the URL."""
    upgrade(migrations_dir=ROOT / "services" / service / "migrations", url=url)
    return url


async def count_rows(engine: AsyncEngine, table: str, where: str = "") -> int:
    """Rows in `table` (optionally filtered by a literal SQL condition)."""
    async with engine.connect() as conn:
        query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int((await conn.execute(sa.text(query))).scalar_one())
