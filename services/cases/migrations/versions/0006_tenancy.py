"""tenant on every record; business keys unique per tenant

Every table gets `tenant` (rows already there belong to "default"). External debtor refs,
payment ids, team, agency and queue names, open accounts and Idempotency-Keys become unique
within a tenant instead of across the whole database: two creditors may number their accounts,
payments and requests alike.

Downgrade drops the tenant again; it fails if two tenants share one of those keys, and it keeps
only the "default" tenant's Idempotency-Keys (the others would collide).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "agencies",
    "cases",
    "collectors",
    "debtors",
    "holds",
    "import_jobs",
    "notes",
    "payments",
    "plans",
    "promises",
    "queues",
    "teams",
    "timeline",
)
#: (table, column, new constraint) of the keys that were unique across tenants.
PER_TENANT_KEYS = (
    ("debtors", "external_ref", "uq_debtors_tenant_ref"),
    ("teams", "name", "uq_teams_tenant_name"),
    ("agencies", "name", "uq_agencies_tenant_name"),
    ("queues", "name", "uq_queues_tenant_name"),
    ("payments", "external_payment_id", "uq_payments_tenant_external_id"),
)
# The unnamed constraints of 0001/0003 as PostgreSQL named them; SQLite's batch mode reflects
# them without a name and takes this convention to tell them apart.
NAMING = {"uq": "%(table_name)s_%(column_0_name)s_key"}
OPEN_ACCOUNT_WHERE = {
    "postgresql_where": sa.text("status = 'open'"),
    "sqlite_where": sa.text("status = 'open'"),
}


def _tenant_column() -> sa.Column[str]:
    return sa.Column("tenant", sa.String(length=63), nullable=False, server_default="default")


def _idempotency_table(name: str, *, tenant: bool) -> sa.Table:
    columns: list[sa.Column[Any]] = [
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]
    if tenant:
        columns.insert(0, _tenant_column())
    # Named as the table it replaces will be known: the model's name, or PostgreSQL's own
    # name for the single-column key of 0001 (neither is taken while the old table exists).
    primary_key = sa.PrimaryKeyConstraint(
        *(["tenant", "key"] if tenant else ["key"]),
        name="pk_idempotency_keys" if tenant else "idempotency_keys_pkey",
    )
    return op.create_table(name, *columns, primary_key)


def _swap_idempotency_table(*, tenant: bool) -> None:
    """Changing a primary key in place is not portable (SQLite cannot): copy into a new table."""
    fresh = _idempotency_table("idempotency_keys_new", tenant=tenant)
    copied = ["key", "request_hash", "status_code", "response", "created_at"]
    old = sa.table("idempotency_keys", *(sa.column(c) for c in [*copied, "tenant"]))
    query = sa.select(*(old.c[c] for c in copied))
    if not tenant:
        query = query.where(old.c.tenant == "default")
    op.execute(fresh.insert().from_select(copied, query))
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_new", "idempotency_keys")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch_op:
            batch_op.add_column(_tenant_column())
            for keyed, column, name in PER_TENANT_KEYS:
                if keyed == table:
                    batch_op.drop_constraint(f"{table}_{column}_key", type_="unique")
                    batch_op.create_unique_constraint(name, ["tenant", column])
            if table == "cases":
                batch_op.drop_index("uq_cases_open_account", **OPEN_ACCOUNT_WHERE)
                batch_op.create_index(
                    "uq_cases_open_account",
                    ["tenant", "account_id"],
                    unique=True,
                    **OPEN_ACCOUNT_WHERE,
                )
                batch_op.create_index("ix_cases_tenant_queue", ["tenant", "status", "priority"])
            if table == "collectors":
                batch_op.create_index("ix_collectors_tenant_name", ["tenant", "name"])
    _swap_idempotency_table(tenant=True)


def downgrade() -> None:
    _swap_idempotency_table(tenant=False)
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch_op:
            if table == "collectors":
                batch_op.drop_index("ix_collectors_tenant_name")
            if table == "cases":
                batch_op.drop_index("ix_cases_tenant_queue")
                batch_op.drop_index("uq_cases_open_account", **OPEN_ACCOUNT_WHERE)
                batch_op.create_index(
                    "uq_cases_open_account", ["account_id"], unique=True, **OPEN_ACCOUNT_WHERE
                )
            for keyed, column, name in PER_TENANT_KEYS:
                if keyed == table:
                    batch_op.drop_constraint(name, type_="unique")
                    batch_op.create_unique_constraint(f"{table}_{column}_key", [column])
            batch_op.drop_column("tenant")
