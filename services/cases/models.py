"""Cases database: debtors, cases and idempotency records."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import MoneyMinorUnits, UtcDateTime

Money = MoneyMinorUnits()


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON}


class Debtor(Base):
    __tablename__ = "debtors"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    external_ref: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    time_zone: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # One open case per account: two agents must never collect the same debt twice.
        sa.Index(
            "uq_cases_open_account",
            "account_id",
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    debtor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("debtors.id"), index=True)
    product: Mapped[str] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    principal: Mapped[Decimal] = mapped_column(Money)
    interest: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    due_date: Mapped[date] = mapped_column(sa.Date)
    industry_risk: Mapped[float] = mapped_column(sa.Float)
    collateral_type: Mapped[str] = mapped_column(sa.String(16), default="none")
    small_business: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    risk_features: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IdempotencyRecord(Base):
    """The first response to a request with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int] = mapped_column(sa.Integer)
    response: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
