"""tenant on every contact table; outcome ids and policy versions unique per tenant

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Tables whose key becomes (tenant, key): a dialer's outcome id and a policy version are only
#: unique within one tenant.
REKEYED = {"contact_outcomes": "outcome_id", "contact_policies": "version"}
KEPT = ("contact_cases", "contact_attempts", "contact_holds", "contact_preferences")


def _tenant_column(*, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "tenant",
        sa.String(length=63),
        server_default="default",
        nullable=False,
        primary_key=primary_key,
    )


def _drop_original_key(batch_op: BatchOperations, table: str) -> None:
    # PostgreSQL named the unnamed key `<table>_pkey`; SQLite has no name for it, and there
    # batch mode rebuilds the table with only the key created after this.
    if op.get_bind().dialect.name != "sqlite":
        batch_op.drop_constraint(f"{table}_pkey", type_="primary")


def upgrade() -> None:
    for table in KEPT:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(_tenant_column())
    for table, key in REKEYED.items():
        with op.batch_alter_table(table) as batch_op:
            # Flagged as a key column so that SQLite's rebuilt table agrees with the new key.
            batch_op.add_column(_tenant_column(primary_key=True))
            _drop_original_key(batch_op, table)
            batch_op.create_primary_key(f"{table}_pkey", ["tenant", key])
    with op.batch_alter_table("contact_cases") as batch_op:
        batch_op.create_index("ix_contact_cases_tenant", ["tenant"])
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.create_index("ix_contact_attempts_tenant_planned_at", ["tenant", "planned_at"])
    with op.batch_alter_table("contact_outcomes") as batch_op:
        batch_op.create_index("ix_contact_outcomes_tenant_occurred_at", ["tenant", "occurred_at"])


def downgrade() -> None:
    with op.batch_alter_table("contact_outcomes") as batch_op:
        batch_op.drop_index("ix_contact_outcomes_tenant_occurred_at")
    with op.batch_alter_table("contact_attempts") as batch_op:
        batch_op.drop_index("ix_contact_attempts_tenant_planned_at")
    with op.batch_alter_table("contact_cases") as batch_op:
        batch_op.drop_index("ix_contact_cases_tenant")
    for table, key in REKEYED.items():
        with op.batch_alter_table(table) as batch_op:
            _drop_original_key(batch_op, table)
            batch_op.drop_column("tenant")
            batch_op.create_primary_key(f"{table}_pkey", [key])
    for table in KEPT:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("tenant")
