"""debtors, holds, assignment, promises, plans, payments, timeline, imports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("commission_rate", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_created", sa.Integer(), nullable=False),
        sa.Column("rows_updated", sa.Integer(), nullable=False),
        sa.Column("rows_unchanged", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rejects", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "timeline",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("timeline", schema=None) as batch_op:
        batch_op.create_index("ix_timeline_case_seq", ["case_id", "seq"], unique=False)

    op.create_table(
        "collectors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("collectors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collectors_team_id"), ["team_id"], unique=False)

    op.create_table(
        "queues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_holds_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_holds_released_at"), ["released_at"], unique=False)

    op.create_table(
        "notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.String(length=10000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notes_case_id"), ["case_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("external_payment_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("to_fees", sa.BigInteger(), nullable=False),
        sa.Column("to_interest", sa.BigInteger(), nullable=False),
        sa.Column("to_principal", sa.BigInteger(), nullable=False),
        sa.Column("unapplied", sa.BigInteger(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_payment_id"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_case_id"), ["case_id"], unique=False)

    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="person"),
        sa.Column("shape", sa.String(length=64), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("waived_interest", sa.BigInteger(), nullable=False),
        sa.Column("waived_fees", sa.BigInteger(), nullable=False),
        sa.Column("waived_principal", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("approver_role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plans_case_id"), ["case_id"], unique=False)

    op.create_table(
        "promises",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=True),
        sa.Column("installment_number", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("promised_date", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("taken_by", sa.String(length=200), nullable=False),
        sa.Column("outcome_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outcome_id"),
    )
    with op.batch_alter_table("promises", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_promises_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_promises_open", ["status", "promised_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_promises_plan_id"), ["plan_id"], unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outstanding", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("first_due_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("installment_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("paid_total", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("industry_code", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("collateral_value", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("portfolio", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("stage", sa.String(length=16), nullable=False, server_default="reminder")
        )
        batch_op.add_column(
            sa.Column("dpd_bucket", sa.String(length=16), nullable=False, server_default="current")
        )
        batch_op.add_column(sa.Column("closure", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("risk_tier", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("treatment", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("team_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("collector_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("agency_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("locked_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("active_holds", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("last_right_party_contact_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("broken_promises", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("import_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_collector_id"), ["collector_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_due_date"), ["due_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_outstanding"), ["outstanding"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_portfolio"), ["portfolio"], unique=False)
        batch_op.create_index("ix_cases_queue", ["status", "priority"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_risk_tier"), ["risk_tier"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_stage"), ["stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key("fk_cases_agency_id", "agencies", ["agency_id"], ["id"])
        batch_op.create_foreign_key("fk_cases_team_id", "teams", ["team_id"], ["id"])
        batch_op.create_foreign_key("fk_cases_collector_id", "collectors", ["collector_id"], ["id"])

    # Existing cases: the first missed due date is the one on record; the balance is the sum.
    op.execute(
        "UPDATE cases SET first_due_date = due_date, outstanding = principal + interest + fees"
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.alter_column("first_due_date", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("outstanding", existing_type=sa.BigInteger(), nullable=False)

    with op.batch_alter_table("debtors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="person")
        )
        batch_op.add_column(sa.Column("national_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("region", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("contact_points", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("addresses", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("debtors", schema=None) as batch_op:
        batch_op.drop_column("addresses")
        batch_op.drop_column("contact_points")
        batch_op.drop_column("region")
        batch_op.drop_column("language")
        batch_op.drop_column("national_id")
        batch_op.drop_column("kind")

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("fk_cases_agency_id", type_="foreignkey")
        batch_op.drop_constraint("fk_cases_team_id", type_="foreignkey")
        batch_op.drop_constraint("fk_cases_collector_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_cases_team_id"))
        batch_op.drop_index(batch_op.f("ix_cases_stage"))
        batch_op.drop_index(batch_op.f("ix_cases_risk_tier"))
        batch_op.drop_index("ix_cases_queue")
        batch_op.drop_index(batch_op.f("ix_cases_portfolio"))
        batch_op.drop_index(batch_op.f("ix_cases_outstanding"))
        batch_op.drop_index(batch_op.f("ix_cases_due_date"))
        batch_op.drop_index(batch_op.f("ix_cases_collector_id"))
        batch_op.drop_index(batch_op.f("ix_cases_agency_id"))
        batch_op.drop_column("updated_at")
        batch_op.drop_column("import_hash")
        batch_op.drop_column("broken_promises")
        batch_op.drop_column("last_right_party_contact_at")
        batch_op.drop_column("active_holds")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("locked_by")
        batch_op.drop_column("agency_id")
        batch_op.drop_column("collector_id")
        batch_op.drop_column("team_id")
        batch_op.drop_column("scored_at")
        batch_op.drop_column("treatment")
        batch_op.drop_column("priority")
        batch_op.drop_column("risk_tier")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("closure")
        batch_op.drop_column("dpd_bucket")
        batch_op.drop_column("stage")
        batch_op.drop_column("tags")
        batch_op.drop_column("portfolio")
        batch_op.drop_column("collateral_value")
        batch_op.drop_column("industry_code")
        batch_op.drop_column("paid_total")
        batch_op.drop_column("installment_amount")
        batch_op.drop_column("first_due_date")
        batch_op.drop_column("outstanding")

    with op.batch_alter_table("promises", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promises_plan_id"))
        batch_op.drop_index("ix_promises_open")
        batch_op.drop_index(batch_op.f("ix_promises_case_id"))

    op.drop_table("promises")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plans_case_id"))

    op.drop_table("plans")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_case_id"))

    op.drop_table("payments")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notes_case_id"))

    op.drop_table("notes")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_holds_released_at"))
        batch_op.drop_index(batch_op.f("ix_holds_case_id"))

    op.drop_table("holds")
    op.drop_table("queues")
    with op.batch_alter_table("collectors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collectors_team_id"))

    op.drop_table("collectors")
    with op.batch_alter_table("timeline", schema=None) as batch_op:
        batch_op.drop_index("ix_timeline_case_seq")

    op.drop_table("timeline")
    op.drop_table("teams")
    op.drop_table("import_jobs")
    op.drop_table("agencies")
