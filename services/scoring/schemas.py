"""HTTP response models of the scoring API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from shared.contracts import RiskTier


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


class CaseScores(BaseModel):
    """The latest score of a case and its history, newest first."""

    case_id: uuid.UUID
    latest: ScoreOut
    history: list[ScoreOut]
