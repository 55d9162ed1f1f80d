"""stored Merkle nodes from level 6 up: lower ones are recomputed from the entries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: services.compliance.service.LOWEST_STORED_LEVEL when this revision was written.
LOWEST_STORED_LEVEL = 6


def upgrade() -> None:
    op.get_bind().execute(
        sa.text("DELETE FROM merkle_nodes WHERE level < :level"), {"level": LOWEST_STORED_LEVEL}
    )


def downgrade() -> None:
    # Store the lower nodes again, computed from the log as 0003 computed them (leaf hashes of
    # the bodies, a purged entry's from its mark), written out so the migration never changes.
    nodes = sa.table(
        "merkle_nodes",
        sa.column("level", sa.SmallInteger()),
        sa.column("idx", sa.BigInteger()),
        sa.column("hash", sa.LargeBinary()),
    )
    purged_prefix = b"\x00purged\x00"
    bind = op.get_bind()
    levels: list[list[bytes]] = [[]]
    rows: list[dict[str, object]] = []
    for (stored,) in bind.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq")):
        body = bytes(stored)
        if body.startswith(purged_prefix):
            current = body[len(purged_prefix) :]
        else:
            current = hashlib.sha256(b"\x00" + body).digest()
        index, level = len(levels[0]), 0
        while level < LOWEST_STORED_LEVEL:
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
