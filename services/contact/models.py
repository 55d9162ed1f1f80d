"""Contact database: what contact knows of each case, and every planned attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.envelope import DEFAULT_TENANT
from shared.db import UtcDateTime


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, list[str]: sa.JSON}


def tenant_column(*, primary_key: bool = False, index: bool = False) -> Mapped[str]:
    """The tenant (creditor) a record belongs to; rows from before tenancy are "default"."""
    return mapped_column(
        sa.String(63), primary_key=primary_key, index=index, server_default=DEFAULT_TENANT
    )


class ContactCase(Base):
    """Contact's own view of a case, filled from `case.opened` and `case.scored` in any order."""

    __tablename__ = "contact_cases"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    tenant: Mapped[str] = tenant_column(index=True)
    debtor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    days_past_due: Mapped[int | None] = mapped_column(sa.Integer)
    priority: Mapped[float | None] = mapped_column(sa.Float)
    risk_tier: Mapped[str | None] = mapped_column(sa.String(16))
    scored_event_id: Mapped[str | None] = mapped_column(sa.String(64))
    human_only: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    treatment: Mapped[str | None] = mapped_column(sa.String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ContactAttempt(Base):
    __tablename__ = "contact_attempts"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "attempt_no", name="uq_attempt_case_no"),
        # The dialer worklist: one tenant's due attempts.
        sa.Index("ix_contact_attempts_tenant_planned_at", "tenant", "planned_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = tenant_column()
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    attempt_no: Mapped[int] = mapped_column(sa.Integer)
    channel: Mapped[str] = mapped_column(sa.String(16))
    template: Mapped[str] = mapped_column(sa.String(64))
    stage: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="planned")
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    local_planned_at: Mapped[str] = mapped_column(sa.String(40))
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    window_rule_id: Mapped[str] = mapped_column(sa.String(32))
    priority: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    result: Mapped[str | None] = mapped_column(sa.String(32))
    leased_by: Mapped[str | None] = mapped_column(sa.String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ContactOutcomeRecord(Base):
    """Every outcome a dialer or gateway reported: the history the caps are counted on,
    across agencies and dialers (a new dialer starts from the same counts). `outcome_id` is the
    dialer's own idempotency key, so it is unique per tenant only."""

    __tablename__ = "contact_outcomes"
    __table_args__ = (
        # Simulations and answer-rate statistics read one tenant's recent outcomes.
        sa.Index("ix_contact_outcomes_tenant_occurred_at", "tenant", "occurred_at"),
    )

    tenant: Mapped[str] = tenant_column(primary_key=True)
    outcome_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    attempt_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    channel: Mapped[str] = mapped_column(sa.String(16))
    result: Mapped[str] = mapped_column(sa.String(32))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    automated: Mapped[bool] = mapped_column(sa.Boolean)
    agency: Mapped[str | None] = mapped_column(sa.String(100))
    dialer: Mapped[str] = mapped_column(sa.String(100))
    flags: Mapped[list[str]] = mapped_column(sa.JSON)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ContactHold(Base):
    """A hold from cases; person-level kinds stop contact on every case of the debtor."""

    __tablename__ = "contact_holds"

    hold_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    tenant: Mapped[str] = tenant_column()
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ContactPreferences(Base):
    """A debtor's channel opt-outs and separate consents, from cases (the latest wins)."""

    __tablename__ = "contact_preferences"

    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    tenant: Mapped[str] = tenant_column()
    opted_out_channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    consents: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ContactPolicy(Base):
    """Every version of a tenant's contact policy; its highest version is in force."""

    __tablename__ = "contact_policies"

    tenant: Mapped[str] = tenant_column(primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    changed_by: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
