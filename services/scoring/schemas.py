"""HTTP request and response models of the scoring API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from shared.contracts import Reason, RiskTier


class ScoreOut(BaseModel):
    """One score of a case and the model version that produced it."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: uuid.UUID
    case_id: uuid.UUID
    model_id: str
    model_version: str
    priority: float
    risk_tier: RiskTier
    days_past_due: int
    amount_outstanding: Decimal
    currency: str
    industry_risk: float
    reason_codes: list[str]
    scored_at: datetime
    score_points: int | None = None
    probability_of_default: float | None = None
    early_warning: str | None = None
    treatment: str | None = None
    strategy_rule: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    challenger: bool = False


class OverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    score_id: uuid.UUID
    risk_tier: RiskTier | None
    priority: float | None
    reason: str
    overridden_by: str
    created_at: datetime


class CaseScores(BaseModel):
    """The latest score of a case, its history (newest first) and any human overrides."""

    case_id: uuid.UUID
    latest: ScoreOut
    history: list[ScoreOut]
    overrides: list[OverrideOut] = Field(default_factory=list)
    effective_tier: RiskTier
    effective_priority: float


class OverrideIn(BaseModel):
    """A person's decision replacing the model's tier and/or priority (PIPL art. 24)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    risk_tier: RiskTier | None = None
    priority: StrictFloat | None = Field(default=None, ge=0, le=1_000_000)
    reason: str = Field(min_length=3, max_length=2000)
    overridden_by: str = Field(min_length=1, max_length=200)


class BatchIn(BaseModel):
    """Rescore these cases now (all open cases scoring knows when `case_ids` is omitted)."""

    model_config = ConfigDict(extra="forbid")

    case_ids: list[uuid.UUID] | None = Field(default=None, max_length=10_000)


class BatchOut(BaseModel):
    scored: int
    unknown_case_ids: list[uuid.UUID]


class ModelSummary(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    key: str
    model_id: str
    version: str
    role: Literal["candidate", "champion", "challenger", "retired"]
    traffic_share: float
    created_at: datetime
    updated_at: datetime
    test_auc: float | None = None


class ModelDetail(ModelSummary):
    card: dict[str, Any]
    features: list[dict[str, Any]]


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["champion", "challenger", "retired"]
    traffic_share: StrictFloat = Field(
        default=0.1, gt=0, le=0.5, description="Challengers only: share of cases they score."
    )
    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=3, max_length=2000)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=3, max_length=2000)


class StabilityRow(BaseModel):
    name: str
    psi: float
    status: Literal["ok", "warning", "alert"]


class Monitoring(BaseModel):
    """Population stability of scores and features: recent scores vs the training sample."""

    model_config = ConfigDict(protected_namespaces=())

    model_key: str
    scores_compared: int
    score_psi: StabilityRow | None
    features: list[StabilityRow]
    thresholds: dict[str, float] = Field(default={"warning": 0.10, "alert": 0.25})
