"""Contact database: what contact knows of each case, and every planned attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class ContactCase(Base):
    """Contact's own view of a case, filled from `case.opened` and `case.scored` in any order."""

    __tablename__ = "contact_cases"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    debtor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    days_past_due: Mapped[int | None] = mapped_column(sa.Integer)
    priority: Mapped[float | None] = mapped_column(sa.Float)
    risk_tier: Mapped[str | None] = mapped_column(sa.String(16))
    scored_event_id: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ContactAttempt(Base):
    __tablename__ = "contact_attempts"
    __table_args__ = (sa.UniqueConstraint("case_id", "attempt_no", name="uq_attempt_case_no"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
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
