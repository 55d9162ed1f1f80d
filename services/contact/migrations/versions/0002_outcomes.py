"""outcomes: the counted history, attempt results, human-only cases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_outcomes",
        sa.Column("outcome_id", sa.Uuid(), nullable=False),
        sa.Column("attempt_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("agency", sa.String(length=100), nullable=True),
        sa.Column("dialer", sa.String(length=100), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("outcome_id"),
    )
    with op.batch_alter_table("contact_outcomes") as batch_op:
        batch_op.create_index("ix_contact_outcomes_attempt_id", ["attempt_id"])
        batch_op.create_index("ix_contact_outcomes_case_id", ["case_id"])
        batch_op.create_index("ix_contact_outcomes_debtor_id", ["debtor_id"])
        batch_op.create_index("ix_contact_outcomes_occurred_at", ["occurred_at"])
    with op.batch_alter_table("contact_cases") as batch_op:
        batch_op.add_column(
            sa.Column("human_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.add_column(sa.Column("result", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.drop_column("result")
    with op.batch_alter_table("contact_cases") as batch_op:
        batch_op.drop_column("human_only")
    op.drop_table("contact_outcomes")
