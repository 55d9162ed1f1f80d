"""HTTP response models of the contact API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.contact.domain import Channel
from shared.contracts import TimeZoneName


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


class DecisionIn(BaseModel):
    """May this debtor be contacted about this debt on this channel at this moment?"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "debtor_id": "6f1c2e4a-1d3b-4c55-9a7e-2b8f0c1d2e3f",
                    "case_id": "0b7d7f2e-9c1a-4e0b-8d55-3f6a7c2b1e90",
                    "channel": "call",
                    "at": "2026-11-22T14:30:00Z",
                    "zones": ["Asia/Shanghai"],
                }
            ]
        },
    )

    debtor_id: uuid.UUID
    case_id: uuid.UUID
    channel: Channel
    at: AwareDatetime | None = Field(default=None, description="Send time; now if omitted.")
    zones: list[TimeZoneName] | None = Field(
        default=None,
        min_length=1,
        max_length=5,
        description="Every zone the debtor may be in; the case's zone if omitted.",
    )
    agency: str | None = Field(default=None, min_length=1, max_length=100)
    third_party: bool = False
    consented: bool = False
    packs: list[str] | None = Field(default=None, min_length=1, max_length=5)


class ObjectionOut(BaseModel):
    rule_id: str
    citation: str
    reason: str
    until: datetime | None = Field(description="When time alone lifts this rule; null if not.")


class DecisionOut(BaseModel):
    allowed: bool
    next_allowed_at: datetime | None
    objections: list[ObjectionOut]
    packs: list[str] = Field(description="Rule packs applied, as name@version.")
    evaluated_at: datetime


class OutcomeRecorded(BaseModel):
    outcome_id: uuid.UUID
    flags: list[str] = Field(description="What compliance will look at; empty when all is well.")
    duplicate: bool = Field(description="This outcome id was already recorded; nothing changed.")
