"""Cases database: debtors, cases, holds, assignment, promises, plans, payments, timeline."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import crypto
from shared.contracts.envelope import DEFAULT_TENANT
from shared.crypto import EncryptedJSON, EncryptedString, SealedPathsJSON
from shared.db import BigIntPK, MoneyMinorUnits, UtcDateTime

Money = MoneyMinorUnits()


def _cipher_from_settings() -> crypto.FieldCipher:
    from services.cases.settings import CasesSettings

    return CasesSettings().field_cipher()


# Tools that open the database without the app (import command, migrations, benchmarks) get
# the keyring from the same CASES_ settings; the app configures it explicitly at start-up.
crypto.set_loader(_cipher_from_settings)

#: Where a case snapshot (timeline, idempotent replay) holds the debtor's personal data.
PERSONAL_SNAPSHOT_PATHS = ("debtor.contact_points", "debtor.addresses")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class TenantOwned:
    """Every record belongs to one tenant; the service filters every query by it, so a record
    of another tenant behaves as if it did not exist. The server default only serves rows
    written before tenancy (migration 0006): the service always sets the tenant itself."""

    tenant: Mapped[str] = mapped_column(sa.String(63), server_default=DEFAULT_TENANT)


class Debtor(TenantOwned, Base):
    __tablename__ = "debtors"
    __table_args__ = (sa.UniqueConstraint("tenant", "external_ref", name="uq_debtors_tenant_ref"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    external_ref: Mapped[str | None] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16), default="person")
    name: Mapped[str] = mapped_column(sa.String(200))
    # Personal data is encrypted at rest (shared/crypto.py); the *_index columns hold keyed
    # blind indexes (HMAC of the normalised value) so a debtor can be found by them.
    national_id: Mapped[str | None] = mapped_column(
        EncryptedString(255, context="debtors.national_id")
    )
    national_id_index: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    phone: Mapped[str | None] = mapped_column(EncryptedString(255, context="debtors.phone"))
    phone_index: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    language: Mapped[str | None] = mapped_column(sa.String(16))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    # Phones/e-mails with type and consent, and postal addresses: read and written whole.
    contact_points: Mapped[list[Any]] = mapped_column(
        EncryptedJSON(context="debtors.contact_points"), default=list
    )
    addresses: Mapped[list[Any]] = mapped_column(
        EncryptedJSON(context="debtors.addresses"), default=list
    )
    # Channel opt-outs and separate consents ("agency:<name>", "third_party:<id>").
    opted_out_channels: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    consents: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    preferences_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Set by a data-subject erasure (services/cases/privacy.py): the personal columns above are
    # then NULL or empty, and the row stays only as the key of the records the law keeps.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Case(TenantOwned, Base):
    __tablename__ = "cases"
    __table_args__ = (
        # One open case per account of a tenant: two agents must never collect the same debt
        # twice (two creditors may well use the same account numbers).
        sa.Index(
            "uq_cases_open_account",
            "tenant",
            "account_id",
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
        sa.Index("ix_cases_queue", "status", "priority"),
        sa.Index("ix_cases_tenant_queue", "tenant", "status", "priority"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("debtors.id"), index=True)
    product: Mapped[str] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    principal: Mapped[Decimal] = mapped_column(Money)
    interest: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    # principal + interest + fees, kept in step so balance filters and sorts are index scans.
    outstanding: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), index=True)
    first_due_date: Mapped[date] = mapped_column(sa.Date)
    due_date: Mapped[date] = mapped_column(sa.Date, index=True)
    installment_amount: Mapped[Decimal | None] = mapped_column(Money)
    paid_total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    industry_risk: Mapped[float] = mapped_column(sa.Float)
    industry_code: Mapped[str | None] = mapped_column(sa.String(16))
    collateral_type: Mapped[str] = mapped_column(sa.String(16), default="none")
    collateral_value: Mapped[Decimal | None] = mapped_column(Money)
    small_business: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    portfolio: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    tags: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    risk_features: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    stage: Mapped[str] = mapped_column(sa.String(16), default="reminder", index=True)
    # The bucket last announced in case.updated: the daily roll publishes when it moves.
    dpd_bucket: Mapped[str] = mapped_column(sa.String(16), default="current")
    closure: Mapped[str | None] = mapped_column(sa.String(16))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # From scoring (case.scored / score.overridden).
    risk_tier: Mapped[str | None] = mapped_column(sa.String(8), index=True)
    priority: Mapped[float] = mapped_column(sa.Float, default=0.0)
    treatment: Mapped[str | None] = mapped_column(sa.String(32))
    scored_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Assignment and the work lock of `POST /v1/queues/{id}/next`.
    team_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    collector_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("collectors.id"), index=True
    )
    agency_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("agencies.id"), index=True)
    locked_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    active_holds: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_right_party_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    broken_promises: Mapped[int] = mapped_column(sa.Integer, default=0)
    import_hash: Mapped[str | None] = mapped_column(sa.String(64))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Hold(TenantOwned, Base):
    __tablename__ = "holds"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    placed_by: Mapped[str] = mapped_column(sa.String(200))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    released_by: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Team(TenantOwned, Base):
    __tablename__ = "teams"
    __table_args__ = (sa.UniqueConstraint("tenant", "name", name="uq_teams_tenant_name"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(100))
    region: Mapped[str | None] = mapped_column(sa.String(64))


class Collector(TenantOwned, Base):
    __tablename__ = "collectors"
    __table_args__ = (sa.Index("ix_collectors_tenant_name", "tenant", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(200))
    team_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    skills: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    languages: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    regions: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    capacity: Mapped[int] = mapped_column(sa.Integer)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Agency(TenantOwned, Base):
    __tablename__ = "agencies"
    __table_args__ = (sa.UniqueConstraint("tenant", "name", name="uq_agencies_tenant_name"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(200))
    commission_rate: Mapped[float] = mapped_column(sa.Float, default=0.0)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Queue(TenantOwned, Base):
    __tablename__ = "queues"
    __table_args__ = (sa.UniqueConstraint("tenant", "name", name="uq_queues_tenant_name"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(100))
    team_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("teams.id"))
    # Which cases the queue serves (stages, buckets, tiers, tags, balance range).
    criteria: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class Promise(TenantOwned, Base):
    """A promise to pay, or one instalment of a plan (tracked the same way)."""

    __tablename__ = "promises"
    __table_args__ = (sa.Index("ix_promises_open", "status", "promised_date"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    plan_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("plans.id"), index=True)
    installment_number: Mapped[int | None] = mapped_column(sa.Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    promised_date: Mapped[date] = mapped_column(sa.Date)
    channel: Mapped[str] = mapped_column(sa.String(16))
    taken_by: Mapped[str] = mapped_column(sa.String(200))
    # A promise taken on a call: the outcome id makes a redelivered outcome harmless.
    outcome_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Plan(TenantOwned, Base):
    __tablename__ = "plans"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    shape: Mapped[str] = mapped_column(sa.String(64))
    total: Mapped[Decimal] = mapped_column(Money)
    waived_interest: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    waived_fees: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    waived_principal: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    approved_by: Mapped[str] = mapped_column(sa.String(200))
    approver_role: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Payment(TenantOwned, Base):
    __tablename__ = "payments"
    __table_args__ = (
        # The payer's id is unique within a tenant: each creditor's payment system numbers its own.
        sa.UniqueConstraint("tenant", "external_payment_id", name="uq_payments_tenant_external_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    external_payment_id: Mapped[str] = mapped_column(sa.String(100))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(sa.String(3))
    paid_on: Mapped[date] = mapped_column(sa.Date)
    channel: Mapped[str | None] = mapped_column(sa.String(32))
    to_fees: Mapped[Decimal] = mapped_column(Money)
    to_interest: Mapped[Decimal] = mapped_column(Money)
    to_principal: Mapped[Decimal] = mapped_column(Money)
    unapplied: Mapped[Decimal] = mapped_column(Money)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Note(TenantOwned, Base):
    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(sa.String(200))
    text: Mapped[str] = mapped_column(sa.String(10_000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TimelineEntry(TenantOwned, Base):
    """Every change to a case, in order, with the case as it stood right after it (so the case
    on any past date is the snapshot of the last entry recorded by then)."""

    __tablename__ = "timeline"
    __table_args__ = (sa.Index("ix_timeline_case_seq", "case_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    kind: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(200))
    summary: Mapped[str] = mapped_column(sa.String(500))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    snapshot: Mapped[dict[str, Any]] = mapped_column(
        SealedPathsJSON(context="timeline.snapshot", paths=PERSONAL_SNAPSHOT_PATHS)
    )
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ImportJob(TenantOwned, Base):
    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    filename: Mapped[str] = mapped_column(sa.String(300))
    format: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    bytes_total: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rows_read: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_created: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(sa.Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(sa.Integer, default=0)
    rejects: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    error: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IdempotencyRecord(TenantOwned, Base):
    """The first response to a request with an Idempotency-Key, replayed on retries. Keys are
    the clients' own, so two tenants using the same key are two different requests."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.PrimaryKeyConstraint("tenant", "key", name="pk_idempotency_keys"),)

    key: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.Integer)
    response: Mapped[dict[str, Any]] = mapped_column(
        SealedPathsJSON(context="idempotency_keys.response", paths=PERSONAL_SNAPSHOT_PATHS)
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Erasure(TenantOwned, Base):
    """A data-subject erasure carried out: the request's reference (unique per tenant, so a
    retried request replays `result`), who asked and why, and what was removed and kept. It
    holds no personal data itself: it is the proof that the request was honoured."""

    __tablename__ = "erasures"
    __table_args__ = (sa.UniqueConstraint("tenant", "request_ref", name="uq_erasures_tenant_ref"),)

    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("debtors.id"), primary_key=True)
    request_ref: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    requested_by: Mapped[str] = mapped_column(sa.String(200))
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime())
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
