"""observed contacts: when a planned contact was scheduled

A planned contact is judged by what was known when contact scheduled it (holds, opt-outs,
consents, policy), and by the hours at the moment it is planned for. Judging it by what was
known at that later moment flagged every plan withdrawn after an opt-out or a hold as a
violation. Plans logged before this revision get the moment of their contact.planned event.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("observed_contacts") as batch_op:
        batch_op.add_column(sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE observed_contacts SET scheduled_at = (SELECT audit_entries.occurred_at "
        "FROM audit_entries WHERE audit_entries.seq = observed_contacts.evidence_seq) "
        "WHERE kind = 'planned'"
    )


def downgrade() -> None:
    with op.batch_alter_table("observed_contacts") as batch_op:
        batch_op.drop_column("scheduled_at")
