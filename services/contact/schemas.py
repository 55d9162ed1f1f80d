"""HTTP response models of the contact API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AttemptOut(BaseModel):
    """A planned contact attempt: channel, template and the lawful slot it may happen in."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    attempt_no: int
    channel: str
    template: str
    stage: str
    status: str
    planned_at: datetime
    local_planned_at: str
    time_zone: str
    window_rule_id: str
    priority: float
    created_at: datetime


class CaseAttempts(BaseModel):
    case_id: uuid.UUID
    attempts: list[AttemptOut]
