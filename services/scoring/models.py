"""Scoring database: every score ever given, with the model version that gave it."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import MoneyMinorUnits, UtcDateTime


class Base(DeclarativeBase):
    pass


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    model_id: Mapped[str] = mapped_column(sa.String(64))
    model_version: Mapped[str] = mapped_column(sa.String(32))
    priority: Mapped[float] = mapped_column(sa.Float)
    risk_tier: Mapped[str] = mapped_column(sa.String(16))
    days_past_due: Mapped[int] = mapped_column(sa.Integer)
    amount_outstanding: Mapped[Decimal] = mapped_column(MoneyMinorUnits())
    currency: Mapped[str] = mapped_column(sa.String(3))
    industry_risk: Mapped[float] = mapped_column(sa.Float)
    reason_codes: Mapped[list[str]] = mapped_column(sa.JSON)
    source_event_id: Mapped[str] = mapped_column(sa.String(64))
    scored_at: Mapped[datetime] = mapped_column(UtcDateTime())
