"""HTTP request and response models of the cases API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from services.cases.domain import Closure, PromiseStatus, Stage
from shared.contracts import CollateralType, HoldKind, Money, PlanKind, TimeZoneName
from shared.contracts.currencies import CurrencyCode
from shared.contracts.events import Consent

Actor = Annotated[
    str, Field(min_length=1, max_length=200, examples=["collector:li.wei"], description="Who.")
]
PositiveMoney = Annotated[Money, Field(gt=0)]
Tag = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_.:-]+$")]
#: `RiskFeatures` for request bodies: a number must be a JSON number (true is not 1.0).
RiskFeaturesIn = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], StrictFloat | str | None],
    Field(max_length=100, description="Model inputs from the core system, by column name."),
]


# `workplace` is a place rather than a channel: no contact at work (Reg F 1006.6(b)(3)).
Channel = Literal["call", "sms", "email", "letter", "visit", "workplace"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DebtorKind(StrEnum):
    PERSON = "person"
    BUSINESS = "business"


class ContactPoint(Strict):
    """A phone number or e-mail address, with whether the debtor consented to its use."""

    kind: Literal["phone", "email"]
    value: str = Field(min_length=3, max_length=200)
    type: Literal["mobile", "home", "work", "personal", "other"] = "mobile"
    consent: StrictBool = Field(default=False, description="Debtor consented to contact here.")
    opted_out: StrictBool = Field(
        default=False, description="Debtor asked not to be contacted here."
    )

    @model_validator(mode="after")
    def _well_formed(self) -> ContactPoint:
        import re

        if self.kind == "phone" and not re.fullmatch(r"\+[1-9][0-9]{6,14}", self.value):
            raise ValueError("phone numbers are E.164, e.g. +8613800138000")
        if self.kind == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.value):
            raise ValueError("not an e-mail address")
        return self


class Address(Strict):
    type: Literal["home", "work", "registered", "mailing", "other"] = "home"
    lines: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=4
    )
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", examples=["CN"])


class DebtorIn(Strict):
    """The person or business that owes the debt."""

    external_ref: str | None = Field(
        default=None, min_length=1, max_length=64, description="Core system's debtor id."
    )
    kind: DebtorKind = DebtorKind.PERSON
    name: str = Field(min_length=1, max_length=200, examples=["张三"])
    national_id: str | None = Field(
        default=None,
        min_length=4,
        max_length=64,
        pattern=r"^[A-Za-z0-9-]+$",
        description="National id (person) or registration number (business).",
    )
    phone: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", examples=["+8613800138000"]
    )
    contact_points: list[ContactPoint] = Field(default_factory=list, max_length=20)
    addresses: list[Address] = Field(default_factory=list, max_length=10)
    time_zone: TimeZoneName
    language: str | None = Field(
        default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", examples=["zh", "en-GB"]
    )
    region: str | None = Field(default=None, max_length=64, examples=["CN-31"])
    opted_out_channels: list[Channel] = Field(
        default_factory=list, description="Channels the debtor asked not to be contacted on."
    )
    consents: list[Consent] = Field(
        default_factory=list,
        max_length=50,
        description="Separate consents: agency:<name> to share with an outside agency, "
        "third_party:<id> to speak to a named third party.",
    )


CASE_EXAMPLE: dict[str, Any] = {
    "account_id": "LN-2026-000123",
    "debtor": {
        "external_ref": "CUST-88231",
        "name": "张三",
        "national_id": "310101199001011234",
        "phone": "+8613800138000",
        "contact_points": [
            {"kind": "phone", "value": "+8613800138000", "type": "mobile", "consent": True}
        ],
        "time_zone": "Asia/Shanghai",
        "language": "zh",
        "region": "CN-31",
    },
    "product": "consumer_loan",
    "currency": "CNY",
    "principal": "12000.00",
    "interest": "350.50",
    "fees": "0",
    "due_date": "2026-10-01",
    "installment_amount": "1100.00",
    "industry_risk": 40,
    "industry_code": "F52",
    "collateral_type": "none",
    "small_business": False,
    "portfolio": "retail-2026q3",
    "tags": ["online"],
    "risk_features": {
        "RevolvingUtilizationOfUnsecuredLines": 0.83,
        "age": 37,
        "NumberOfTime30-59DaysPastDueNotWorse": 1,
        "DebtRatio": 0.42,
        "MonthlyIncome": 5400,
        "NumberOfTimes90DaysLate": 0,
    },
}


class CaseCreate(Strict):
    """A delinquent account to open a case for."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [CASE_EXAMPLE]}
    )

    account_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    debtor: DebtorIn
    product: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    currency: CurrencyCode
    principal: Money
    interest: Money = Decimal("0.00")
    fees: Money = Decimal("0.00")
    due_date: date = Field(description="The first missed due date; DPD counts from it.")
    installment_amount: PositiveMoney | None = Field(
        default=None,
        description="Monthly instalment of an instalment loan: each one paid moves the "
        "oldest unpaid due date (and so DPD) a month on.",
    )
    industry_risk: StrictFloat = Field(
        default=50.0, ge=0, le=100, description="Industry risk index."
    )
    industry_code: str | None = Field(default=None, max_length=16, pattern=r"^[A-Za-z0-9.]+$")
    collateral_type: CollateralType = CollateralType.NONE
    collateral_value: Money | None = None
    small_business: StrictBool = False
    portfolio: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    risk_features: RiskFeaturesIn = Field(default_factory=dict)

    @model_validator(mode="after")
    def _owes_something(self) -> CaseCreate:
        if self.principal + self.interest + self.fees <= 0:
            raise ValueError("principal + interest + fees must be greater than zero")
        return self


class DebtorOut(BaseModel):
    id: uuid.UUID
    external_ref: str | None
    kind: DebtorKind = DebtorKind.PERSON
    name: str
    time_zone: str
    language: str | None = None
    region: str | None = None
    contact_points: list[ContactPoint] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)
    opted_out_channels: list[str] = Field(default_factory=list)
    consents: list[str] = Field(default_factory=list)
    erased_at: datetime | None = Field(
        default=None,
        description="Set once a data-subject erasure removed the debtor's personal data: "
        "name, ids, phones, e-mails and addresses are then empty.",
    )


class PreferencesIn(Strict):
    """The debtor's whole current set of opt-outs and consents (replaces the previous one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "opted_out_channels": ["sms"],
                    "consents": ["agency:Far East Recovery"],
                    "changed_by": "collector:li.wei",
                    "reason": "debtor asked on a call on 2026-11-20 to stop text messages",
                }
            ]
        },
    )

    opted_out_channels: list[Channel] = Field(default_factory=list)
    consents: list[Consent] = Field(default_factory=list, max_length=50)
    changed_by: Actor
    reason: str = Field(min_length=1, max_length=2000)


class Assignment(BaseModel):
    team_id: uuid.UUID | None = None
    collector_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    locked_by: uuid.UUID | None = None
    locked_until: datetime | None = None


ReachChannel = Literal["call", "sms", "email"]


class Reach(BaseModel):
    """Where a case's debtor may be reached on one channel: clear numbers or addresses, for
    the dialer about to make that contact (scope `cases:reach`)."""

    case_id: uuid.UUID
    channel: ReachChannel
    contact_points: list[ContactPoint] = Field(
        description="Of the channel's kind and not opted out of, those the debtor consented to "
        "first. Empty when the debtor opted out of the channel, the case is not open or the "
        "debtor's personal data was erased."
    )


class CaseOut(BaseModel):
    """A case as the system of record holds it."""

    id: uuid.UUID
    account_id: str
    status: str = Field(examples=["open", "closed"])
    stage: Stage = Stage.REMINDER
    closure: Closure | None = None
    closed_at: datetime | None = None
    debtor: DebtorOut
    product: str
    currency: str
    principal: Decimal
    interest: Decimal
    fees: Decimal
    amount_outstanding: Decimal
    paid_total: Decimal = Decimal("0.00")
    due_date: date = Field(description="Oldest unpaid due date.")
    installment_amount: Decimal | None = None
    days_past_due: int
    dpd_bucket: str
    industry_risk: float
    industry_code: str | None = None
    collateral_type: CollateralType
    collateral_value: Decimal | None = None
    small_business: bool
    portfolio: str | None = None
    tags: list[str] = Field(default_factory=list)
    risk_features: dict[str, float | str | None]
    risk_tier: str | None = None
    priority: float = 0.0
    treatment: str | None = None
    scored_at: datetime | None = None
    assignment: Assignment = Field(default_factory=Assignment)
    on_hold: bool = False
    broken_promises: int = 0
    last_right_party_contact_at: datetime | None = None
    opened_at: datetime
    updated_at: datetime | None = None


class CasePage(BaseModel):
    items: list[CaseOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class StageChange(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "stage": "legal",
                    "reason": "no payment 90 days after the lawyer's letter",
                    "changed_by": "manager:zhao",
                }
            ]
        },
    )

    stage: Literal[Stage.LEGAL, Stage.RESTRUCTURING, Stage.LATE, Stage.EARLY, Stage.REMINDER]
    reason: str = Field(min_length=1, max_length=2000)
    changed_by: Actor


class CloseCase(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "closure": "written_off",
                    "reason": "uncollectable after litigation",
                    "closed_by": "manager:zhao",
                }
            ]
        },
    )

    closure: Closure
    reason: str = Field(min_length=1, max_length=2000)
    closed_by: Actor


class HoldCreate(Strict):
    """A reason not to contact the debtor (REGULATIONS: holds that block all contact)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "hardship",
                    "reason": "Lost job; 60-day pause agreed",
                    "placed_by": "supervisor:wang",
                    "starts_at": "2026-11-01T00:00:00Z",
                    "ends_at": "2026-12-31T00:00:00Z",
                }
            ]
        },
    )

    kind: HoldKind
    reason: str = Field(min_length=1, max_length=2000)
    placed_by: Actor
    starts_at: AwareDatetime | None = Field(
        default=None, description="Default now; may be back-dated (hardship), not future."
    )
    ends_at: AwareDatetime | None = Field(default=None, description="Null: until released.")


class HoldRelease(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"released_by": "supervisor:wang", "reason": "dispute answered with the statement"}
            ]
        },
    )

    released_by: Actor
    reason: str = Field(default="", max_length=2000)


class HoldOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    kind: HoldKind
    reason: str
    placed_by: str
    starts_at: datetime
    ends_at: datetime | None
    released_at: datetime | None
    released_by: str | None
    active: bool


class PaymentIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_payment_id": "PAY-20261120-0001",
                    "amount": "500.00",
                    "currency": "CNY",
                    "paid_on": "2026-11-20",
                    "channel": "bank_transfer",
                }
            ]
        },
    )

    external_payment_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    amount: PositiveMoney
    currency: CurrencyCode
    paid_on: date
    channel: str | None = Field(default=None, max_length=32, pattern=r"^[a-z_]+$")


class PaymentOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    external_payment_id: str
    amount: Decimal
    currency: str
    paid_on: date
    to_fees: Decimal
    to_interest: Decimal
    to_principal: Decimal
    unapplied: Decimal = Field(description="Overpayment held for refund.")
    amount_outstanding_after: Decimal
    days_past_due_after: int
    case_status_after: str


class PromiseIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": "2000.00",
                    "promised_date": "2026-11-30",
                    "channel": "call",
                    "taken_by": "collector:li.wei",
                }
            ]
        },
    )

    amount: PositiveMoney
    promised_date: date
    channel: Literal["call", "sms", "email", "letter", "visit", "app", "wechat"] = "call"
    taken_by: Actor


class PromiseOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    plan_id: uuid.UUID | None
    installment_number: int | None
    amount: Decimal
    promised_date: date
    channel: str
    taken_by: str
    status: PromiseStatus
    resolved_at: datetime | None
    created_at: datetime


class PlanIn(Strict):
    """An instalment plan ("3+6+12", optionally stepped) or a settlement offer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "installments",
                    "shape": "3+6+12",
                    "step_weights": ["0.5", "1", "1.5"],
                    "first_due_date": "2026-12-01",
                    "approved_by": "supervisor:wang",
                    "approver_role": "supervisor",
                },
                {
                    "kind": "settlement",
                    "interest_waiver": "0.30",
                    "first_due_date": "2026-12-01",
                    "approved_by": "supervisor:wang",
                    "approver_role": "supervisor",
                },
            ]
        },
    )

    kind: PlanKind
    shape: str = Field(
        default="1", pattern=r"^[1-9][0-9]{0,2}(\+[1-9][0-9]{0,2}){0,5}$", examples=["3+6+12"]
    )
    step_weights: list[Annotated[Decimal, Field(gt=0, le=100)]] | None = None
    first_due_date: date
    interest_waiver: Annotated[Decimal, Field(ge=0, le=1)] = Decimal(0)
    fees_waiver: Annotated[Decimal, Field(ge=0, le=1)] = Decimal(0)
    principal_waiver: Annotated[Decimal, Field(ge=0, le=1)] = Decimal(0)
    approved_by: Actor
    approver_role: str = Field(min_length=1, max_length=32, examples=["supervisor"])


class PlanOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    kind: PlanKind
    shape: str
    total: Decimal
    waived: Decimal
    status: str
    approved_by: str
    approver_role: str
    installments: list[PromiseOut]
    created_at: datetime


class NoteIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "author": "collector:li.wei",
                    "text": "Debtor travelling until 30 Nov; call back after.",
                }
            ]
        },
    )

    author: Actor
    text: str = Field(min_length=1, max_length=10_000)


class TimelineEntryOut(BaseModel):
    seq: int
    kind: str = Field(examples=["opened", "payment", "hold_placed"])
    actor: str
    summary: str
    data: dict[str, object]
    recorded_at: datetime


class Timeline(BaseModel):
    case_id: uuid.UUID
    entries: list[TimelineEntryOut]


# --- assignment -----------------------------------------------------------------------------


class TeamIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "Shanghai early", "region": "CN-31"}]},
    )

    name: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=64)


class TeamOut(TeamIn):
    id: uuid.UUID


Skill = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class CollectorIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Li Wei",
                    "team_id": "6c1f7a54-59a5-4a0e-9a8e-54b1f8a0f0a1",
                    "skills": ["early", "call", "settlement_offer"],
                    "languages": ["zh"],
                    "regions": ["CN-31"],
                    "capacity": 120,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    team_id: uuid.UUID
    skills: list[Skill] = Field(default_factory=list, max_length=30)
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]] = Field(
        default_factory=list, max_length=10, description="Empty: any language."
    )
    regions: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50, description="Empty: any region."
    )
    capacity: StrictInt = Field(ge=1, le=10_000, description="Open cases the collector can carry.")
    active: StrictBool = True


class CollectorOut(CollectorIn):
    id: uuid.UUID
    assigned: int = Field(description="Open cases assigned now.")


class AgencyIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "Far East Recovery", "commission_rate": 0.18}]},
    )

    name: str = Field(min_length=1, max_length=200)
    commission_rate: StrictFloat = Field(default=0.0, ge=0, le=1)
    active: StrictBool = True


class AgencyOut(AgencyIn):
    id: uuid.UUID


class QueueCriteria(Strict):
    """Which open cases a queue serves; empty lists mean "any"."""

    stages: list[Stage] = Field(default_factory=list)
    buckets: list[str] = Field(default_factory=list, examples=[["8-15", "16-30"]])
    risk_tiers: list[Literal["high", "medium", "low"]] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    portfolios: list[str] = Field(default_factory=list)
    min_balance: Money | None = None
    max_balance: Money | None = None


class QueueIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "early-high",
                    "team_id": "6c1f7a54-59a5-4a0e-9a8e-54b1f8a0f0a1",
                    "criteria": {
                        "stages": ["early"],
                        "risk_tiers": ["high"],
                        "min_balance": "1000.00",
                    },
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    team_id: uuid.UUID | None = None
    criteria: QueueCriteria = Field(default_factory=QueueCriteria)


class QueueOut(QueueIn):
    id: uuid.UUID


class NextCaseIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"collector_id": "0e2b9d7c-3f1a-4c55-8a7e-2b8f0c1d2e3f", "lock_minutes": 30}
            ]
        },
    )

    collector_id: uuid.UUID
    lock_minutes: StrictInt = Field(default=30, ge=1, le=480)


class LockRelease(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"collector_id": "0e2b9d7c-3f1a-4c55-8a7e-2b8f0c1d2e3f"}]},
    )

    collector_id: uuid.UUID


class AssignIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "collector_id": "0e2b9d7c-3f1a-4c55-8a7e-2b8f0c1d2e3f",
                    "assigned_by": "supervisor:wang",
                }
            ]
        },
    )

    collector_id: uuid.UUID
    assigned_by: Actor


class PlacementIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"agency_id": "5b7e2c1d-9a3f-4e0b-8d55-3f6a7c2b1e90", "placed_by": "manager:zhao"}
            ]
        },
    )

    agency_id: uuid.UUID
    placed_by: Actor


class RecallIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"recalled_by": "manager:zhao", "reason": "no contact in 60 days"}]
        },
    )

    recalled_by: Actor
    reason: str = Field(min_length=1, max_length=500)


class AllocationIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"team_id": "6c1f7a54-59a5-4a0e-9a8e-54b1f8a0f0a1", "limit": 500}]
        },
    )

    team_id: uuid.UUID | None = Field(default=None, description="Only this team's collectors.")
    limit: StrictInt = Field(default=1000, ge=1, le=100_000)
    assigned_by: Actor = "system:allocation"


class AllocationOut(BaseModel):
    assigned: int
    left_unassigned: int = Field(description="No suitable collector had room.")


# --- imports and jobs ----------------------------------------------------------------------


class ImportReject(BaseModel):
    row: int = Field(description="1-based data row (CSV header is row 0).")
    field: str
    reason: str


class ImportJobOut(BaseModel):
    id: uuid.UUID
    filename: str
    format: Literal["csv", "jsonl"]
    status: Literal["queued", "running", "done", "failed"]
    bytes_total: int
    bytes_done: int = Field(description="Progress: bytes of the upload processed so far.")
    rows_read: int
    rows_created: int
    rows_updated: int
    rows_unchanged: int
    rows_rejected: int
    rejects: list[ImportReject] = Field(description="The first 1,000 rejects.")
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class DailyRunOut(BaseModel):
    promises_kept: int
    promises_broken: int
    holds_expired: int
    cases_rolled: int = Field(description="Cases whose DPD bucket or stage moved.")


# --- data-subject requests (services/cases/privacy.py) ----------------------------------------


class ErasureIn(Strict):
    """A data-subject erasure request (PIPL art. 47, GDPR art. 17)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "request_ref": "DSR-2026-00042",
                    "reason": "erasure requested by the data subject; all debts settled",
                }
            ]
        },
    )

    request_ref: str = Field(
        min_length=1,
        max_length=200,
        description="The DSR ticket id: a retry with the same one replays the first result.",
    )
    reason: str = Field(
        min_length=1,
        max_length=2000,
        description="Why (kept with the erasure record: no personal data here, please).",
    )


class ErasureOut(BaseModel):
    """What an erasure removed, and what it kept and under which law."""

    debtor_id: uuid.UUID
    request_ref: str
    reason: str
    requested_by: str
    erased_at: datetime
    erased_fields: list[str] = Field(description="What was overwritten or emptied.")
    retained: dict[str, str] = Field(
        description="Record kind -> the legal reason it is kept (de-identified)."
    )
    retained_until: date | None = Field(
        description="When the last retained record's statutory retention ends."
    )
    retained_case_ids: list[uuid.UUID] = Field(
        description="Closed cases still inside the retention period of financial records: "
        "their balances, payments, promises and plans are kept, keyed by the debtor id only."
    )
    deleted_case_ids: list[uuid.UUID] = Field(
        description="Closed cases past that period: deleted with everything attached to them."
    )


class NoteOut(BaseModel):
    id: uuid.UUID
    author: str
    text: str
    created_at: datetime


class TimelineEntryExport(TimelineEntryOut):
    snapshot: dict[str, Any] = Field(description="The case as it stood right after the entry.")


class CaseExport(BaseModel):
    case: CaseOut
    holds: list[HoldOut]
    promises: list[PromiseOut] = Field(description="Promises to pay (plan instalments: plans).")
    plans: list[PlanOut]
    payments: list[PaymentOut]
    notes: list[NoteOut]
    timeline: list[TimelineEntryExport]


class DebtorRecordOut(DebtorOut):
    """The debtor's whole record, including what `DebtorOut` leaves out."""

    national_id: str | None
    phone: str | None
    preferences_changed_at: datetime | None
    created_at: datetime


class DebtorExport(BaseModel):
    """Everything the cases service holds about a debtor, decrypted (data-subject access:
    PIPL art. 45, GDPR art. 15). Contact attempts and outcomes come from the contact service
    (`GET /v1/debtors/{id}/export` there); the evidence log, violations and complaints from
    compliance (`GET /v1/reports/export?case_id=`, `GET /v1/complaints?debtor_id=`)."""

    debtor: DebtorRecordOut
    cases: list[CaseExport]
    erasure: ErasureOut | None = Field(description="The erasure carried out, if any.")
    exported_at: datetime
    elsewhere: list[str] = Field(description="Where the rest of the debtor's data is exported.")
