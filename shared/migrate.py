"""Alembic helpers: each service keeps its own `migrations/`; these run them on any URL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection

from shared.db import create_engine, is_sqlite
from shared.messaging import messaging_metadata


def alembic_config(*, migrations_dir: Path, url: str) -> Config:
    """An Alembic config without an ini file: script location and URL only."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(*, migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (call outside a running event loop)."""
    command.upgrade(alembic_config(migrations_dir=migrations_dir, url=url), revision)


def run_env(*, target_metadata: Sequence[MetaData]) -> None:
    """Body of every service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=list(target_metadata), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, target_metadata))


def _skip_messaging_tables(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # The outbox/inbox tables are created by `shared.messaging.create_messaging_tables` in each
    # service's first revision, so autogenerate must not write them out four times.
    table = getattr(obj, "table", obj) if type_ != "table" else obj
    table_name = getattr(table, "name", name)
    return table_name not in messaging_metadata.tables


async def _run_online(url: str, target_metadata: Sequence[MetaData]) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=list(target_metadata),
            render_as_batch=is_sqlite(url),
            compare_type=True,
            include_object=_skip_messaging_tables,
        )
        with context.begin_transaction():
            context.run_migrations()

    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()
