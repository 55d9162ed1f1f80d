"""debtors' channel opt-outs and separate consents

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.add_column(
            sa.Column("opted_out_channels", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("consents", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("preferences_changed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_column("preferences_changed_at")
        batch_op.drop_column("consents")
        batch_op.drop_column("opted_out_channels")
