"""data-subject erasure: debtors.erased_at and the erasures carried out

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "erasures",
        sa.Column("tenant", sa.String(length=63), nullable=False, server_default="default"),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("request_ref", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"], name="fk_erasures_debtor"),
        sa.PrimaryKeyConstraint("debtor_id", name="pk_erasures"),
        sa.UniqueConstraint("tenant", "request_ref", name="uq_erasures_tenant_ref"),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_column("erased_at")
