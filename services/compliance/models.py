"""Compliance database: the append-only evidence chain and its head, what the independent
re-check has learned from the events, violations, complaints and QA reviews.

The evidence log is one hash chain and one Merkle tree for the whole platform (splitting it
would break every proof and checkpoint): each entry records its tenant, but the head, the
tree's nodes and the checkpoints belong to no tenant. Everything else is per tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.envelope import DEFAULT_TENANT
from shared.db import BigIntPK, UtcDateTime


class Base(DeclarativeBase):
    pass


def tenant_column(*, primary_key: bool = False) -> Mapped[str]:
    """The tenant a row belongs to (from the event's envelope or the caller's credential).
    Indexed together with what each table is listed by (see `__table_args__`)."""
    return mapped_column(
        sa.String(63),
        primary_key=primary_key,
        server_default=DEFAULT_TENANT,
        default=DEFAULT_TENANT,
    )


class AuditEntry(Base):
    """One event as received; never updated or deleted (retention purges keep the hashes)."""

    __tablename__ = "audit_entries"
    # Tenants read their own entries in seq order; verification and proofs read all of them.
    __table_args__ = (sa.Index("ix_audit_entries_tenant_seq", "tenant", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    topic: Mapped[str] = mapped_column(sa.String(200))
    event_type: Mapped[str] = mapped_column(sa.String(100), index=True)
    case_key: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)  # `domain.purged_body` once purged
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    entry_hash: Mapped[str] = mapped_column(sa.String(64))
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The envelope's tenant (the hashed body holds it too, when the producer set it).
    tenant: Mapped[str] = tenant_column()


class ChainHead(Base):
    """The single row naming the last entry; locking it serialises appends across replicas.
    Platform-wide, like the tree and the checkpoints: no tenant."""

    __tablename__ = "chain_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    entry_hash: Mapped[str] = mapped_column(sa.String(64))


class Checkpoint(Base):
    """A signed tree head, as issued (publish it, anchor it, compare it later)."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(sa.BigInteger)
    root_hash: Mapped[str] = mapped_column(sa.String(64))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    key_id: Mapped[str] = mapped_column(sa.String(32))
    public_key: Mapped[str] = mapped_column(sa.String(64))
    signature: Mapped[str] = mapped_column(sa.String(128))


class MerkleNode(Base):
    """The root of a perfect subtree of the log (level 0: leaf hashes), written once when its
    last leaf is appended; heads and proofs read O(log n) of them instead of the whole log."""

    __tablename__ = "merkle_nodes"

    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


# --- What the independent re-check knows, learned only from the events themselves ----------


class KnownCase(Base):
    """A case as compliance saw it opened (the debtor's zone decides lawful hours)."""

    __tablename__ = "known_cases"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    team_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)  # from case.assigned
    collector_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    tenant: Mapped[str] = tenant_column()


class KnownPreferences(Base):
    """Every version of a debtor's opt-outs and consents: a contact is judged by the version in
    force at its moment (events may arrive out of order)."""

    __tablename__ = "known_preferences"

    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    opted_out: Mapped[list[str]] = mapped_column(sa.JSON)
    consents: Mapped[list[str]] = mapped_column(sa.JSON)
    evidence_seq: Mapped[int] = mapped_column(sa.BigInteger)
    tenant: Mapped[str] = tenant_column()


class KnownHold(Base):
    """A hold as placed in cases; in force from max(starts_at, recorded_at): a back-dated hold
    does not make earlier contacts unlawful, nobody could have known of it then."""

    __tablename__ = "known_holds"

    hold_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    in_force_from: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    evidence_seq: Mapped[int] = mapped_column(sa.BigInteger)
    tenant: Mapped[str] = tenant_column()


class KnownPolicy(Base):
    """A contact policy version as published (the packs and local rules in force from then);
    each tenant numbers its own versions."""

    __tablename__ = "known_policies"

    tenant: Mapped[str] = tenant_column(primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    evidence_seq: Mapped[int] = mapped_column(sa.BigInteger)


class ObservedContact(Base):
    """A contact that happened (`outcome:<id>`, from the dialer's report or contact's record) or
    was scheduled (`planned:<attempt id>`); re-checked when it arrives and again when a hold,
    opt-out or case it depends on arrives later."""

    __tablename__ = "observed_contacts"
    __table_args__ = (sa.Index("ix_observed_contacts_tenant_occurred_at", "tenant", "occurred_at"),)

    subject: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    attempt_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    channel: Mapped[str] = mapped_column(sa.String(16))
    result: Mapped[str | None] = mapped_column(sa.String(32))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    # A planned contact: when contact scheduled it (`occurred_at` is the moment planned for).
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    agency: Mapped[str | None] = mapped_column(sa.String(100))
    automated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Who worked the case when compliance saw the contact (QA samples per team, reports name
    # the collector).
    team_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    collector_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    evidence_seq: Mapped[int] = mapped_column(sa.BigInteger)
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    tenant: Mapped[str] = tenant_column()


class Violation(Base):
    """A rule a contact broke, found by compliance's own re-check (once per subject and rule)."""

    __tablename__ = "violations"
    __table_args__ = (
        sa.UniqueConstraint("subject", "rule_id"),
        sa.Index("ix_violations_tenant_occurred_at", "tenant", "occurred_at"),
    )

    violation_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(80))
    rule_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    citation: Mapped[str] = mapped_column(sa.String(300))
    severity: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(1000))
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    agency: Mapped[str | None] = mapped_column(sa.String(100))
    collector_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    evidence_seqs: Mapped[list[int]] = mapped_column(sa.JSON)
    tenant: Mapped[str] = tenant_column()


class BlockedContact(Base):
    """One rule id of a `contact.blocked` event: contact's refusals, counted for reports."""

    __tablename__ = "blocked_contacts"
    __table_args__ = (sa.Index("ix_blocked_contacts_tenant_checked_at", "tenant", "checked_at"),)

    event_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    tenant: Mapped[str] = tenant_column()


# --- Complaints, transcript reviews and quality assurance ------------------------------------


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (sa.Index("ix_complaints_tenant_received_at", "tenant", "received_at"),)

    complaint_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    channel: Mapped[str] = mapped_column(sa.String(20))
    category: Mapped[str] = mapped_column(sa.String(32), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    signature: Mapped[list[int]] = mapped_column(sa.JSON)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    tenant: Mapped[str] = tenant_column()


class ComplaintChange(Base):
    """The status history of a complaint (append-only)."""

    __tablename__ = "complaint_changes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    complaint_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    status: Mapped[str] = mapped_column(sa.String(20))
    changed_by: Mapped[str] = mapped_column(sa.String(200))
    note: Mapped[str] = mapped_column(sa.String(2000))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    tenant: Mapped[str] = tenant_column()


class QaReview(Base):
    __tablename__ = "qa_reviews"
    __table_args__ = (sa.Index("ix_qa_reviews_tenant_reviewed_at", "tenant", "reviewed_at"),)

    review_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(80), index=True)
    reviewer_kind: Mapped[str] = mapped_column(sa.String(16))
    reviewer: Mapped[str] = mapped_column(sa.String(200))
    period: Mapped[str] = mapped_column(sa.String(10))
    score: Mapped[int] = mapped_column(sa.Integer)
    passed: Mapped[bool] = mapped_column(sa.Boolean)
    findings: Mapped[list[str]] = mapped_column(sa.JSON)
    reviewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    tenant: Mapped[str] = tenant_column()
