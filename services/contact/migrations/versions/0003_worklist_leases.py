"""worklist leases on attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.add_column(sa.Column("leased_by", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_contact_attempts_status_planned", ["status", "planned_at"])


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.drop_index("ix_contact_attempts_status_planned")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("leased_by")
