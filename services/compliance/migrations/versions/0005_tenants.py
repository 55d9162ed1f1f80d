"""tenants: every record of the log's entries, the re-check, complaints and QA names its tenant

The chain head, the Merkle nodes and the checkpoints stay platform-wide (one log, one tree).
Rows written before tenancy belong to the tenant "default". Policy versions are numbered per
tenant, so their primary key becomes (tenant, version).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "audit_entries",
    "known_cases",
    "known_preferences",
    "known_holds",
    "known_policies",
    "observed_contacts",
    "violations",
    "blocked_contacts",
    "complaints",
    "complaint_changes",
    "qa_reviews",
)
#: (index, table, columns) of the per-tenant listings.
INDEXES = (
    ("ix_audit_entries_tenant_seq", "audit_entries", ["tenant", "seq"]),
    ("ix_observed_contacts_tenant_occurred_at", "observed_contacts", ["tenant", "occurred_at"]),
    ("ix_violations_tenant_occurred_at", "violations", ["tenant", "occurred_at"]),
    ("ix_blocked_contacts_tenant_checked_at", "blocked_contacts", ["tenant", "checked_at"]),
    ("ix_complaints_tenant_received_at", "complaints", ["tenant", "received_at"]),
    ("ix_qa_reviews_tenant_reviewed_at", "qa_reviews", ["tenant", "reviewed_at"]),
)
POLICY_PK = "known_policies_pkey"


def _policy_key(columns: list[str]) -> None:
    # SQLite's batch mode rebuilds the table with the new key, its columns declared as key
    # columns (or SQLAlchemy warns of the mismatch); elsewhere the old key is dropped by name.
    # Going back to `version` alone drops the tenant in the same step, for the same reason.
    sqlite = op.get_bind().dialect.name == "sqlite"
    key_columns: list[sa.Column[object]] = [
        sa.Column("tenant", sa.String(length=63), primary_key=True, server_default="default"),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    ]
    with op.batch_alter_table(
        "known_policies",
        schema=None,
        reflect_args=tuple(c for c in key_columns if c.name in columns) if sqlite else (),
    ) as batch_op:
        if not sqlite:
            batch_op.drop_constraint(POLICY_PK, type_="primary")
        if "tenant" not in columns:
            batch_op.drop_column("tenant")
        batch_op.create_primary_key(POLICY_PK, columns)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("tenant", sa.String(length=63), server_default="default", nullable=False)
            )
    for name, table, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)
    _policy_key(["tenant", "version"])


def downgrade() -> None:
    _policy_key(["version"])
    for name, table, _columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    for table in TABLES:
        if table != "known_policies":
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_column("tenant")
