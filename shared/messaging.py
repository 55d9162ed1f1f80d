"""Tables every service keeps for reliable messaging: the outbox and the inbox.

They live in each service's own database (created by each service's first migration through
`create_messaging_tables`), so a state change and its event commit in one transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.db import BigIntPK, UtcDateTime

messaging_metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    messaging_metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("key", sa.String(200), nullable=True),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.JSON, nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("published_at", UtcDateTime(), nullable=True),
    sa.Column("kafka_partition", sa.Integer, nullable=True),
    sa.Column("kafka_offset", sa.BigInteger, nullable=True),
    sa.Index(
        "ix_outbox_unpublished",
        "id",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    ),
    sa.Index("ix_outbox_published_at", "published_at"),
)

inbox = sa.Table(
    "inbox",
    messaging_metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
)

# One relay per service database publishes at a time, so per-key order holds with replicas.
relay_lease = sa.Table(
    "relay_lease",
    messaging_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)


def create_messaging_tables(op: Any) -> None:
    """Create the outbox/inbox/lease tables from an Alembic migration (`op` is alembic.op)."""
    bind = op.get_bind()
    messaging_metadata.create_all(bind, checkfirst=False)


def drop_messaging_tables(op: Any) -> None:
    """Drop the messaging tables from an Alembic downgrade."""
    messaging_metadata.drop_all(op.get_bind(), checkfirst=True)
