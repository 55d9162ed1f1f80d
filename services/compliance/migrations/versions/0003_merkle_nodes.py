"""stored Merkle nodes: tree heads and proofs in O(log n)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    nodes = op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    # Backfill from the log as it stands (the same leaf and node hashes as services.compliance.
    # merkle, written out here so the migration never changes with the code).
    bind = op.get_bind()
    levels: list[list[bytes]] = [[]]
    rows: list[dict[str, object]] = []
    for (body,) in bind.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq")):
        current = hashlib.sha256(b"\x00" + bytes(body)).digest()
        index, level = len(levels[0]), 0
        while True:
            if len(levels) <= level:
                levels.append([])
            levels[level].append(current)
            rows.append({"level": level, "idx": index, "hash": current})
            if not index & 1:
                break
            current = hashlib.sha256(b"\x01" + levels[level][index - 1] + current).digest()
            index >>= 1
            level += 1
        if len(rows) >= 5000:
            op.bulk_insert(nodes, rows)
            rows = []
    if rows:
        op.bulk_insert(nodes, rows)


def downgrade() -> None:
    op.drop_table("merkle_nodes")
