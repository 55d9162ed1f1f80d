"""Scoring database: case snapshots, the model registry, every score and every override.

Case snapshots, scores and overrides belong to the tenant of the case (from the consumed
events' envelope). The registry of model documents is platform configuration shared by every
tenant; which model plays which role is per tenant (`model_roles`, `model_activations`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.envelope import DEFAULT_TENANT
from shared.db import BigIntPK, MoneyMinorUnits, UtcDateTime


def tenant_column(*, index: bool = True) -> Mapped[str]:
    return mapped_column(
        sa.String(63), index=index, server_default=DEFAULT_TENANT, default=DEFAULT_TENANT
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class ScoredCase(Base):
    """What scoring knows of a case: the inputs to score it again (batch, weekly rescoring)."""

    __tablename__ = "scored_cases"

    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    tenant: Mapped[str] = tenant_column()
    days_past_due: Mapped[int] = mapped_column(sa.Integer)
    amount_outstanding: Mapped[Decimal] = mapped_column(MoneyMinorUnits())
    currency: Mapped[str] = mapped_column(sa.String(3))
    industry_risk: Mapped[float] = mapped_column(sa.Float)
    collateral_type: Mapped[str] = mapped_column(sa.String(16))
    small_business: Mapped[bool] = mapped_column(sa.Boolean)
    risk_features: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    broken_promises: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default="open", index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    tenant: Mapped[str] = tenant_column()
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
    scored_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    model_key: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    score_points: Mapped[int | None] = mapped_column(sa.Integer)
    probability_of_default: Mapped[float | None] = mapped_column(sa.Float)
    early_warning: Mapped[str | None] = mapped_column(sa.String(8))
    treatment: Mapped[str | None] = mapped_column(sa.String(32))
    strategy_rule: Mapped[str | None] = mapped_column(sa.String(64))
    reasons: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    bins: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    challenger: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class RegisteredModel(Base):
    """A scorecard version in the shared registry. `tenant` only records whose admin
    registered it: every tenant sees and may activate every model."""

    __tablename__ = "models"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    tenant: Mapped[str] = tenant_column(index=False)
    model_id: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(32))
    document: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ModelRole(Base):
    """The role of a model for one tenant: champion, challenger or retired (no row: candidate).
    A tenant without any row scores with the roles of the default tenant."""

    __tablename__ = "model_roles"

    tenant: Mapped[str] = mapped_column(
        sa.String(63), primary_key=True, server_default=DEFAULT_TENANT
    )
    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    traffic_share: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ModelActivation(Base):
    """Every role change of a tenant, in order: the audit trail and what rollback walks back."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = tenant_column()
    key: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(16))
    traffic_share: Mapped[float] = mapped_column(sa.Float)
    actor: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class ScoreOverride(Base):
    __tablename__ = "score_overrides"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    tenant: Mapped[str] = tenant_column()
    score_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    risk_tier: Mapped[str | None] = mapped_column(sa.String(16))
    priority: Mapped[float | None] = mapped_column(sa.Float)
    reason: Mapped[str] = mapped_column(sa.String(2000))
    overridden_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
