"""HTTP response models of the contact API."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from services.contact.domain import Channel
from shared.contracts import ContactOutcome, TimeZoneName


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
    third_party: StrictBool = False
    consented: StrictBool = False
    workplace: StrictBool = Field(
        default=False, description="Reaching the debtor at work (work number, e-mail, address)."
    )
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


def _wall_clock(value: time | None) -> time | None:
    if value is not None and value.tzinfo is not None:
        raise ValueError("a local wall-clock time, without an offset (the debtor's zone applies)")
    return value


WallClock = Annotated[time, AfterValidator(_wall_clock)]


class QuietWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: WallClock
    end: WallClock

    @model_validator(mode="after")
    def _ordered(self) -> QuietWindow:
        if not self.start < self.end:
            raise ValueError("a quiet window starts before it ends")
        return self


class PolicyIn(BaseModel):
    """Rule packs in force and local rules on top; local rules may only be stricter."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "packs": ["cn"],
                    "window_start": "09:00",
                    "window_end": "21:00",
                    "quiet": [{"start": "12:00", "end": "13:30"}],
                    "holidays": ["2026-10-01", "2026-10-02"],
                    "caps": {"CN-CALLS-DAY": 2},
                    "min_gap_minutes": 60,
                    "changed_by": "compliance-officer-li",
                    "reason": "Golden Week and lunch-time quiet hours",
                }
            ]
        },
    )

    packs: list[str] = Field(min_length=1, max_length=5)
    window_start: WallClock | None = None
    window_end: WallClock | None = None
    quiet: list[QuietWindow] = Field(default_factory=list, max_length=10)
    holidays: list[date] = Field(default_factory=list, max_length=400)
    caps: dict[Annotated[str, Field(max_length=32)], Annotated[StrictInt, Field(ge=0, le=1000)]] = (
        Field(default_factory=dict, max_length=20)
    )
    min_gap_minutes: StrictInt | None = Field(default=None, ge=1, le=1440)
    prefer_answer_hours: StrictBool = Field(
        default=False,
        description="Plan at the lawful hour (within a day) when the segment answers most, "
        "learned from outcomes, instead of the earliest lawful moment.",
    )
    changed_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=3, max_length=2000)


class PolicyOut(PolicyIn):
    version: int = Field(description="0 is the built-in default (settings), never stored.")
    changed_at: datetime | None


class SimulatedAttempt(BaseModel):
    outcome_id: uuid.UUID
    case_id: uuid.UUID
    channel: str
    occurred_at: datetime
    verdict: str = Field(examples=["blocked", "moved"])
    rule_ids: list[str]
    next_allowed_at: datetime | None


class SimulationOut(BaseModel):
    """What the proposed policy would have done to the stored attempt history."""

    attempts_replayed: int
    allowed: int
    moved: int
    blocked: int
    by_rule: dict[str, int]
    examples: list[SimulatedAttempt] = Field(description="Up to 100 affected attempts.")


# --- data-subject access (GET /v1/debtors/{id}/export) -----------------------------------------


class KnownCaseOut(BaseModel):
    """What contact learned of one of the debtor's cases from cases and scoring."""

    model_config = ConfigDict(from_attributes=True)

    case_id: uuid.UUID
    time_zone: str | None
    days_past_due: int | None
    priority: float | None
    risk_tier: str | None
    treatment: str | None
    human_only: bool
    closed_at: datetime | None


class OutcomeOut(BaseModel):
    """A contact outcome a dialer or gateway reported."""

    model_config = ConfigDict(from_attributes=True)

    outcome_id: uuid.UUID
    attempt_id: uuid.UUID | None
    case_id: uuid.UUID
    channel: str
    result: str
    occurred_at: datetime
    automated: bool
    agency: str | None
    dialer: str
    flags: list[str]
    details: dict[str, object]


class HoldKnownOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    hold_id: uuid.UUID
    case_id: uuid.UUID
    kind: str
    reason: str
    starts_at: datetime
    ends_at: datetime | None
    released_at: datetime | None


class PreferencesKnownOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    opted_out_channels: list[str]
    consents: list[str]
    changed_at: datetime


class ContactDebtorExport(BaseModel):
    """Everything contact holds about a debtor (data-subject access): contact keeps no name,
    phone, e-mail or address, only ids, the cases' zone and scores, attempts, outcomes, holds
    and preferences."""

    debtor_id: uuid.UUID
    cases: list[KnownCaseOut]
    attempts: list[AttemptOut]
    outcomes: list[OutcomeOut]
    holds: list[HoldKnownOut]
    preferences: PreferencesKnownOut | None
    exported_at: datetime


class OutcomeReport(ContactOutcome):
    """`contact.outcome` as a dialer posts it over HTTP: the event contract, with its integer
    and boolean fields strict like every other request body ("12", 12.0 or "true" is a 422).
    The topic keeps the contract's own parsing, as every consumer of the event does."""

    automated: StrictBool = Field(default=False, description="IVR, robocall or automated message.")
    duration_seconds: StrictInt | None = Field(default=None, ge=0, le=86_400)
