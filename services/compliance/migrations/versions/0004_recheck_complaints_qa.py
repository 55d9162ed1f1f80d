"""independent re-check, violations, complaints and QA reviews

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "blocked_contacts",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "rule_id"),
    )
    with op.batch_alter_table("blocked_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blocked_contacts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_blocked_contacts_checked_at"), ["checked_at"], unique=False
        )

    op.create_table(
        "complaint_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("complaint_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("complaint_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaint_changes_complaint_id"), ["complaint_id"], unique=False
        )

    op.create_table(
        "complaints",
        sa.Column("complaint_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("complaint_id"),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaints_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_debtor_id"), ["debtor_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaints_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_status"), ["status"], unique=False)

    op.create_table(
        "known_cases",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("collector_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("known_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_known_cases_debtor_id"), ["debtor_id"], unique=False)

    op.create_table(
        "known_holds",
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("in_force_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hold_id"),
    )
    with op.batch_alter_table("known_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_known_holds_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_known_holds_debtor_id"), ["debtor_id"], unique=False)

    op.create_table(
        "known_policies",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("known_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_known_policies_changed_at"), ["changed_at"], unique=False
        )

    op.create_table(
        "known_preferences",
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("opted_out", sa.JSON(), nullable=False),
        sa.Column("consents", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("debtor_id", "changed_at"),
    )
    op.create_table(
        "observed_contacts",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("attempt_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency", sa.String(length=100), nullable=True),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("collector_id", sa.Uuid(), nullable=True),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject"),
    )
    with op.batch_alter_table("observed_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_observed_contacts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_observed_contacts_occurred_at"), ["occurred_at"], unique=False
        )

    op.create_table(
        "qa_reviews",
        sa.Column("review_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("reviewer_kind", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("review_id"),
    )
    with op.batch_alter_table("qa_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_qa_reviews_subject"), ["subject"], unique=False)

    op.create_table(
        "violations",
        sa.Column("violation_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("citation", sa.String(length=300), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=True),
        sa.Column("agency", sa.String(length=100), nullable=True),
        sa.Column("collector_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_seqs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("violation_id"),
        sa.UniqueConstraint("subject", "rule_id"),
    )
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_violations_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_violations_debtor_id"), ["debtor_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_violations_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_violations_rule_id"), ["rule_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_violations_rule_id"))
        batch_op.drop_index(batch_op.f("ix_violations_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_violations_debtor_id"))
        batch_op.drop_index(batch_op.f("ix_violations_case_id"))

    op.drop_table("violations")
    with op.batch_alter_table("qa_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_qa_reviews_subject"))

    op.drop_table("qa_reviews")
    with op.batch_alter_table("observed_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observed_contacts_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_observed_contacts_case_id"))

    op.drop_table("observed_contacts")
    op.drop_table("known_preferences")
    with op.batch_alter_table("known_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_policies_changed_at"))

    op.drop_table("known_policies")
    with op.batch_alter_table("known_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_holds_debtor_id"))
        batch_op.drop_index(batch_op.f("ix_known_holds_case_id"))

    op.drop_table("known_holds")
    with op.batch_alter_table("known_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_cases_debtor_id"))

    op.drop_table("known_cases")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_status"))
        batch_op.drop_index(batch_op.f("ix_complaints_received_at"))
        batch_op.drop_index(batch_op.f("ix_complaints_debtor_id"))
        batch_op.drop_index(batch_op.f("ix_complaints_category"))
        batch_op.drop_index(batch_op.f("ix_complaints_case_id"))
        batch_op.drop_index(batch_op.f("ix_complaints_campaign_id"))

    op.drop_table("complaints")
    with op.batch_alter_table("complaint_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_changes_complaint_id"))

    op.drop_table("complaint_changes")
    with op.batch_alter_table("blocked_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blocked_contacts_checked_at"))
        batch_op.drop_index(batch_op.f("ix_blocked_contacts_case_id"))

    op.drop_table("blocked_contacts")
