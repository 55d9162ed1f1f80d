"""Event payload contracts, versioned. Consumers accept every version listed in the registry."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import Envelope, current_actor

Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=2, description="Amount as a decimal string."),
    AfterValidator(lambda amount: amount.quantize(Decimal("0.01"))),
]


def _check_time_zone(name: str) -> str:
    if name != name.strip() or name.startswith("/") or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone name")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["Asia/Shanghai"], description="IANA time zone."),
    AfterValidator(_check_time_zone),
]


class EventPayload(BaseModel):
    """Base of every payload: frozen, strict about unknown fields, tagged with type and version."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    event_version: ClassVar[int]


class RiskTier(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


FeatureValue = float | str | None
RiskFeatures = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], FeatureValue],
    Field(max_length=100, description="Model inputs from the core system, by column name."),
]


class CollateralType(StrEnum):
    NONE = "none"
    REAL_ESTATE = "real_estate"
    VEHICLE = "vehicle"
    EQUIPMENT = "equipment"
    OTHER = "other"


ContactChannel = Annotated[
    str,
    Field(
        pattern=r"^(call|sms|email|letter|visit|workplace)$",
        description="A channel, or `workplace`: no contact at the place of work (US-WORKPLACE).",
    ),
]
Consent = Annotated[
    str,
    Field(
        pattern=r"^(agency|third_party):\S.{0,99}$",
        examples=["agency:Far East Recovery", "third_party:6f1c2e4a-1d3b-4c55-9a7e-2b8f0c1d2e3f"],
    ),
]


class CaseOpened(EventPayload):
    """A delinquent account became a collection case (one open case per account)."""

    event_type: ClassVar[str] = "case.opened"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    account_id: str = Field(min_length=1, max_length=64)
    debtor_id: uuid.UUID
    debtor_time_zone: TimeZoneName
    product: str = Field(min_length=1, max_length=64)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    principal: Money
    interest: Money
    fees: Money
    amount_outstanding: Money
    due_date: date
    days_past_due: int = Field(ge=0)
    industry_risk: float = Field(ge=0, le=100)
    opened_at: AwareDatetime
    collateral_type: CollateralType = CollateralType.NONE
    small_business: bool = False
    risk_features: RiskFeatures = Field(default_factory=dict)
    opted_out_channels: list[ContactChannel] = Field(
        default_factory=list, description="Channels the debtor opted out of (at opening)."
    )
    consents: list[Consent] = Field(default_factory=list)


class DebtorPreferencesChanged(EventPayload):
    """The debtor's channel opt-outs and separate consents (PIPL art. 23/44), replacing the
    previous ones. Contact applies them to every later decision and withdraws live attempts on
    a channel now opted out of."""

    event_type: ClassVar[str] = "debtor.preferences_changed"
    event_version: ClassVar[int] = 1

    debtor_id: uuid.UUID
    opted_out_channels: list[ContactChannel] = Field(default_factory=list)
    consents: list[Consent] = Field(default_factory=list)
    changed_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(max_length=2000)
    changed_at: AwareDatetime


class DebtorErased(EventPayload):
    """A data-subject erasure request was carried out in cases: the debtor's personal data
    is gone there, except what a law obliges the creditor to keep (listed in `retained`, with
    the reason). Every other service removes what it holds about the debtor and never
    contacts them again; the compliance log keeps its chain verifiable."""

    event_type: ClassVar[str] = "debtor.erased"
    event_version: ClassVar[int] = 1

    debtor_id: uuid.UUID
    case_ids: list[uuid.UUID] = Field(default_factory=list)
    request_ref: str = Field(min_length=1, max_length=200, description="The DSR ticket id.")
    erased_fields: list[str]
    retained: dict[str, str] = Field(
        default_factory=dict, description="Record kind -> the legal reason it is kept."
    )
    erased_at: AwareDatetime


class CaseUpdated(EventPayload):
    """A case's balance, days past due, bucket or stage changed."""

    event_type: ClassVar[str] = "case.updated"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    days_past_due: int = Field(ge=0)
    dpd_bucket: str = Field(max_length=16)
    stage: str = Field(max_length=32, examples=["reminder", "early", "late", "legal"])
    amount_outstanding: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    changed: list[str] = Field(default_factory=list, description="Fields that changed.")
    updated_at: AwareDatetime


class PaymentReceived(EventPayload):
    """A payment was booked against a case (idempotent by the payer's external id)."""

    event_type: ClassVar[str] = "payment.received"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    payment_id: uuid.UUID
    external_payment_id: str = Field(min_length=1, max_length=100)
    amount: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    received_at: AwareDatetime
    amount_outstanding_after: Money
    days_past_due_after: int = Field(ge=0)


class PtpBroken(EventPayload):
    """A promise to pay was not kept by its date (plus grace)."""

    event_type: ClassVar[str] = "ptp.broken"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    ptp_id: uuid.UUID
    promised_amount: Money
    promised_date: date
    paid_amount: Money
    broken_at: AwareDatetime
    broken_promises_total: int = Field(ge=1, description="Broken promises on this case so far.")
    plan_id: uuid.UUID | None = Field(default=None, description="Set when an instalment broke.")
    installment_number: int | None = Field(default=None, ge=1)


class PtpCreated(EventPayload):
    """A promise to pay was taken (by a collector, or from a call outcome)."""

    event_type: ClassVar[str] = "ptp.created"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    ptp_id: uuid.UUID
    promised_amount: Money
    promised_date: date
    channel: str = Field(max_length=16, examples=["call"])
    taken_by: str = Field(min_length=1, max_length=200)
    created_at: AwareDatetime
    plan_id: uuid.UUID | None = None
    installment_number: int | None = Field(default=None, ge=1)
    outcome_id: uuid.UUID | None = Field(
        default=None, description="The contact outcome it came from."
    )


class PtpKept(EventPayload):
    """Payments by the promised date (plus grace) covered the promise."""

    event_type: ClassVar[str] = "ptp.kept"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    ptp_id: uuid.UUID
    promised_amount: Money
    promised_date: date
    kept_at: AwareDatetime
    plan_id: uuid.UUID | None = None
    installment_number: int | None = Field(default=None, ge=1)


class PlanKind(StrEnum):
    INSTALLMENTS = "installments"
    SETTLEMENT = "settlement"


class PlanCreated(EventPayload):
    """An approved payment plan or settlement offer; each instalment is also a `ptp.created`."""

    event_type: ClassVar[str] = "plan.created"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    plan_id: uuid.UUID
    kind: PlanKind
    total: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    installments: int = Field(ge=1)
    first_due_date: date
    waived: Money = Field(description="Forgiven if the plan is kept (settlements).")
    approved_by: str = Field(min_length=1, max_length=200)
    approver_role: str = Field(max_length=32)
    created_at: AwareDatetime


class CaseAssigned(EventPayload):
    """Who works the case now: a collector (and team), an outside agency, or nobody (recall)."""

    event_type: ClassVar[str] = "case.assigned"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    team_id: uuid.UUID | None = None
    collector_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    assigned_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(max_length=200, examples=["allocation", "queue", "placement", "recall"])
    assigned_at: AwareDatetime


class CaseClosed(EventPayload):
    """The case ended; contact must stop and nothing more is collected on it."""

    event_type: ClassVar[str] = "case.closed"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    account_id: str = Field(min_length=1, max_length=64)
    closure: str = Field(examples=["settled", "restructured", "written_off", "sold", "legal"])
    amount_outstanding: Money = Field(description="What was still owed (written off, sold).")
    closed_by: str = Field(min_length=1, max_length=200)
    closed_at: AwareDatetime


class HoldKind(StrEnum):
    DISPUTE = "dispute"
    COMPLAINT = "complaint"
    HARDSHIP = "hardship"
    BANKRUPTCY = "bankruptcy"
    DECEASED = "deceased"
    ATTORNEY = "attorney"
    CEASE = "cease"
    IDENTITY_THEFT = "identity_theft"
    DO_NOT_CONTACT = "do_not_contact"
    COMPLIANCE_REVIEW = "compliance_review"  # compliance found a violation on the case


class HoldPlaced(EventPayload):
    """Contact must stop: for this debt (dispute, complaint, hardship) or for the person."""

    event_type: ClassVar[str] = "case.hold_placed"
    event_version: ClassVar[int] = 1

    hold_id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    kind: HoldKind
    reason: str = Field(max_length=2000)
    placed_by: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime = Field(description="May be back-dated (hardship).")
    ends_at: AwareDatetime | None = None


class HoldReleased(EventPayload):
    event_type: ClassVar[str] = "case.hold_released"
    event_version: ClassVar[int] = 1

    hold_id: uuid.UUID
    case_id: uuid.UUID
    released_by: str = Field(min_length=1, max_length=200)
    released_at: AwareDatetime


class Reason(BaseModel):
    """Why a case scored as it did (PIPL art. 24): a feature band that cost points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(examples=["RevolvingUtilizationOfUnsecuredLines"])
    text: str
    points_lost: int = Field(ge=0)


class CaseScored(EventPayload):
    """Scoring's verdict on a case: priority, risk tier and the model that produced them."""

    event_type: ClassVar[str] = "case.scored"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    score_id: uuid.UUID
    model_id: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=32)
    priority: float
    risk_tier: RiskTier
    days_past_due: int = Field(ge=0)
    amount_outstanding: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason_codes: list[str] = Field(default_factory=list, max_length=10)
    scored_at: AwareDatetime
    probability_of_default: float | None = Field(default=None, ge=0, le=1)
    score_points: int | None = None
    early_warning: str | None = Field(default=None, examples=["red", "orange", "yellow", "blue"])
    treatment: str | None = Field(default=None, examples=["call", "settlement_offer"])
    strategy_rule: str | None = Field(default=None, description="The strategy row that fired.")
    reasons: list[Reason] = Field(default_factory=list, max_length=10)
    challenger: bool = Field(default=False, description="Scored by a challenger model.")


class ScoreOverridden(EventPayload):
    """A person replaced a score's tier or priority, with a reason (human review path)."""

    event_type: ClassVar[str] = "score.overridden"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    score_id: uuid.UUID
    override_id: uuid.UUID
    risk_tier: RiskTier | None = None
    priority: float | None = None
    reason: str = Field(min_length=1, max_length=2000)
    overridden_by: str = Field(min_length=1, max_length=200)
    overridden_at: AwareDatetime


class ContactPlanned(EventPayload):
    """A contact attempt a dialer or gateway may carry out at `planned_at` (never earlier)."""

    event_type: ClassVar[str] = "contact.planned"
    event_version: ClassVar[int] = 1

    attempt_id: uuid.UUID
    case_id: uuid.UUID
    debtor_id: uuid.UUID
    channel: str = Field(examples=["sms", "call", "letter"])
    template: str
    stage: str
    planned_at: AwareDatetime = Field(description="UTC instant of the slot.")
    local_planned_at: str = Field(
        description="The slot in the debtor's zone, ISO 8601 with offset."
    )
    time_zone: TimeZoneName
    window_rule_id: str = Field(examples=["CN-HOURS"])
    priority: float
    fallback_from: str | None = Field(
        default=None,
        description="The treatment's channel when the debtor opted out of it and this attempt "
        "carries the message on another channel instead.",
        examples=[None, "call"],
    )


class ContactCancelled(EventPayload):
    """A planned attempt was withdrawn (a hold, a closed case): dialers must drop it."""

    event_type: ClassVar[str] = "contact.cancelled"
    event_version: ClassVar[int] = 1

    attempt_id: uuid.UUID
    case_id: uuid.UUID
    rule_ids: list[str]
    reason: str
    cancelled_at: AwareDatetime


class ContactBlocked(EventPayload):
    """A planned attempt may not be released: the rules that object and, if time alone lifts
    them, when it may be tried again (then it stays planned, moved to that moment)."""

    event_type: ClassVar[str] = "contact.blocked"
    event_version: ClassVar[int] = 1

    attempt_id: uuid.UUID
    case_id: uuid.UUID
    rule_ids: list[str] = Field(min_length=1)
    reasons: list[str]
    next_allowed_at: AwareDatetime | None
    checked_at: AwareDatetime


class ContactPolicyChanged(EventPayload):
    """A tenant changed its contact policy (rule packs and stricter local rules)."""

    event_type: ClassVar[str] = "contact.policy_changed"
    event_version: ClassVar[int] = 1

    version: int = Field(ge=1)
    packs: list[str]
    policy: dict[str, Any]
    changed_by: str
    reason: str
    changed_at: AwareDatetime


class ApiKeyCreated(EventPayload):
    """An API key was issued (never the secret, nor its hash). With `replaces`, it rotates an
    older key, which stays valid until `replaced_key_expires_at`."""

    event_type: ClassVar[str] = "admin.key_created"
    event_version: ClassVar[int] = 1

    key_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    client: str
    kind: str
    scopes: list[str]
    subject: str | None = None
    expires_at: AwareDatetime | None = None
    replaces: str | None = None
    replaced_key_expires_at: AwareDatetime | None = None
    created_by: str = Field(description="The operator who ran the command.")
    created_at: AwareDatetime


class ApiKeyRevoked(EventPayload):
    """An API key was revoked; it is refused from `revoked_at`."""

    event_type: ClassVar[str] = "admin.key_revoked"
    event_version: ClassVar[int] = 1

    key_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    client: str
    revoked_by: str
    reason: str
    revoked_at: AwareDatetime


class ModelActivated(EventPayload):
    """A tenant changed which scoring model scores its cases: a new champion, a challenger's
    traffic share, a retirement, or a roll-back."""

    event_type: ClassVar[str] = "model.activated"
    event_version: ClassVar[int] = 1

    model_key: str
    role: str = Field(
        default="champion", description="champion, challenger (with a traffic share) or retired."
    )
    traffic_share: float | None = Field(default=None, ge=0, le=1)
    previous_model_key: str | None = None
    rollback: bool = False
    activated_at: AwareDatetime


class CheckpointIssued(EventPayload):
    """A signed tree head of the evidence log, to anchor outside the system."""

    event_type: ClassVar[str] = "compliance.checkpoint"
    event_version: ClassVar[int] = 1

    tree_size: int = Field(ge=1)
    root_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    issued_at: AwareDatetime
    key_id: str
    public_key: str = Field(description="Ed25519 public key, hex.")
    signature: str = Field(description="Ed25519 signature over the canonical checkpoint, hex.")


class OutcomeResult(StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"
    RIGHT_PARTY_CONTACT = "right_party_contact"
    THIRD_PARTY = "third_party"
    PROMISE_TO_PAY = "promise_to_pay"
    REFUSED = "refused"
    DISPUTE_RAISED = "dispute_raised"
    CALLBACK_REQUESTED = "callback_requested"
    AGITATED = "agitated"


class ContactOutcome(EventPayload):
    """What happened on an attempt, reported by a dialer or gateway (topic contact.outcomes,
    or POST /v1/contact/outcomes). `outcome_id` is the dialer's own id: resending is harmless."""

    event_type: ClassVar[str] = "contact.outcome"
    event_version: ClassVar[int] = 1

    outcome_id: uuid.UUID
    attempt_id: uuid.UUID | None = Field(
        default=None, description="The planned attempt; null or unknown ids are kept and flagged."
    )
    case_id: uuid.UUID
    channel: str = Field(pattern=r"^(call|sms|email|letter|visit)$")
    result: OutcomeResult
    occurred_at: AwareDatetime
    automated: bool = Field(default=False, description="IVR, robocall or automated message.")
    agency: str | None = Field(default=None, max_length=100)
    dialer: str = Field(min_length=1, max_length=100)
    promised_amount: Money | None = None
    promised_date: date | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=86_400)


class ContactOutcomeRecorded(EventPayload):
    """Contact stored an outcome, with what compliance should look at (`flags`)."""

    event_type: ClassVar[str] = "contact.outcome_recorded"
    event_version: ClassVar[int] = 1

    outcome_id: uuid.UUID
    attempt_id: uuid.UUID | None
    case_id: uuid.UUID
    debtor_id: uuid.UUID | None
    channel: str
    result: OutcomeResult
    occurred_at: AwareDatetime
    flags: list[str] = Field(
        default_factory=list, examples=[["never_planned", "forbidden_time:CN-HOURS"]]
    )
    promised_amount: Money | None = Field(default=None, description="On promise_to_pay.")
    promised_date: date | None = None
    agency: str | None = Field(default=None, max_length=100)


class ContactEscalated(EventPayload):
    """The case goes to a human collector (e.g. three agitated outcomes in a row on automated
    channels)."""

    event_type: ClassVar[str] = "contact.escalated"
    event_version: ClassVar[int] = 1

    case_id: uuid.UUID
    reason: str
    escalated_at: AwareDatetime


class Severity(StrEnum):
    CRITICAL = "critical"  # contact that must not have happened at all (hold, opt-out)
    MAJOR = "major"  # a rule broken in how or when (hours, caps, consent)
    MINOR = "minor"  # a stricter local policy broken, or something for review


class ViolationDetected(EventPayload):
    """Compliance's own re-check found a contact (or a planned one) that breaks a rule."""

    event_type: ClassVar[str] = "violation.detected"
    event_version: ClassVar[int] = 1

    violation_id: uuid.UUID
    rule_id: str = Field(examples=["CN-HOURS"])
    citation: str
    severity: Severity
    reason: str
    subject: str = Field(
        description="What was checked: `outcome:<id>` (a contact that happened) or "
        "`planned:<attempt id>` (a contact the contact service scheduled).",
        examples=["outcome:0b7d7f2e-9c1a-4e0b-8d55-3f6a7c2b1e90"],
    )
    case_id: uuid.UUID
    debtor_id: uuid.UUID | None = None
    agency: str | None = None
    occurred_at: AwareDatetime = Field(description="When the contact happened (or was planned).")
    detected_at: AwareDatetime
    evidence_seqs: list[int] = Field(
        description="Evidence-log entries (sequence numbers) the finding rests on."
    )
    hold_requested: bool = Field(
        default=False, description="Cases should hold contact on the case pending review."
    )


class ComplaintCategory(StrEnum):
    NOT_MY_DEBT = "not_my_debt"
    WRONG_AMOUNT = "wrong_amount"
    HARASSMENT = "harassment"
    THIRD_PARTY_CONTACT = "third_party_contact"
    PRIVACY = "privacy"
    OTHER = "other"


class ComplaintOpened(EventPayload):
    """A complaint was received; an open complaint holds contact on the case."""

    event_type: ClassVar[str] = "complaint.opened"
    event_version: ClassVar[int] = 1

    complaint_id: uuid.UUID
    case_id: uuid.UUID | None = None
    debtor_id: uuid.UUID
    channel: str
    category: ComplaintCategory
    received_at: AwareDatetime
    first_response_due: AwareDatetime
    resolution_due: AwareDatetime
    campaign_id: uuid.UUID | None = Field(
        default=None, description="Set when the text matches many other debtors' complaints."
    )


class ComplaintStatusChanged(EventPayload):
    """A complaint moved (acknowledged, investigating, resolved, ...); `open` says whether it
    still holds contact."""

    event_type: ClassVar[str] = "complaint.status_changed"
    event_version: ClassVar[int] = 1

    complaint_id: uuid.UUID
    case_id: uuid.UUID | None = None
    debtor_id: uuid.UUID
    status: str
    previous_status: str
    open: bool
    changed_by: str
    note: str = Field(default="", max_length=2000)
    changed_at: AwareDatetime


class TranscriptReviewed(EventPayload):
    """A call transcript or template was checked for prohibited language and call steps."""

    event_type: ClassVar[str] = "transcript.reviewed"
    event_version: ClassVar[int] = 1

    review_id: uuid.UUID
    case_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = None
    kind: str = Field(pattern=r"^(transcript|template)$")
    ok: bool
    rule_ids: list[str]
    hits: list[dict[str, Any]]
    steps_missing: list[str] = Field(default_factory=list)
    phrase_list_version: str
    text_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reviewed_at: AwareDatetime


class CompliancePurged(EventPayload):
    """Retention or a data-subject erasure removed the content of these log entries (their
    hashes stay, so the chain and the Merkle tree still verify); the verifier accepts only
    purges recorded here."""

    event_type: ClassVar[str] = "compliance.purged"
    event_version: ClassVar[int] = 1

    purge_id: uuid.UUID
    seq_ranges: list[tuple[int, int]] = Field(description="Inclusive ranges of entries purged.")
    entries: int = Field(ge=1)
    retention_days: int
    retention_days_by_kind: dict[str, int]
    purged_at: AwareDatetime
    reason: str = Field(
        default="retention",
        pattern=r"^(retention|erasure)$",
        description=(
            "`retention`: past the retention periods above; `erasure`: a data-subject erasure "
            "(the causation id is its `debtor.erased` event; retention days are then 0). "
            "Absent in purges recorded before this field existed, which were all retention."
        ),
    )


class QaReviewed(EventPayload):
    """A supervisor or QA reviewer scored a sampled contact."""

    event_type: ClassVar[str] = "qa.reviewed"
    event_version: ClassVar[int] = 1

    review_id: uuid.UUID
    subject: str
    reviewer_kind: str = Field(pattern=r"^(supervisor|qa)$")
    reviewer: str
    period: str
    score: int = Field(ge=0, le=100)
    passed: bool
    findings: list[str]
    reviewed_at: AwareDatetime


PAYLOADS: tuple[type[EventPayload], ...] = (
    CaseOpened,
    CaseUpdated,
    PaymentReceived,
    PtpBroken,
    PtpCreated,
    PtpKept,
    PlanCreated,
    CaseAssigned,
    CaseClosed,
    DebtorPreferencesChanged,
    DebtorErased,
    HoldPlaced,
    HoldReleased,
    CaseScored,
    ScoreOverridden,
    ContactPlanned,
    ContactBlocked,
    ContactCancelled,
    ContactPolicyChanged,
    ContactOutcome,
    ContactOutcomeRecorded,
    ContactEscalated,
    ApiKeyCreated,
    ApiKeyRevoked,
    ModelActivated,
    CheckpointIssued,
    ViolationDetected,
    ComplaintOpened,
    ComplaintStatusChanged,
    TranscriptReviewed,
    QaReviewed,
    CompliancePurged,
)

REGISTRY: dict[tuple[str, int], type[EventPayload]] = {
    (p.event_type, p.event_version): p for p in PAYLOADS
}


class UnknownEventError(ValueError):
    """The (type, version) pair has no contract in this build."""


def payload_model(event_type: str, version: int) -> type[EventPayload]:
    """The payload class for a type and version; raises UnknownEventError otherwise."""
    try:
        return REGISTRY[(event_type, version)]
    except KeyError:
        raise UnknownEventError(f"no contract for {event_type!r} version {version}") from None


def parse_payload(envelope: Envelope) -> EventPayload:
    """Validate an envelope's payload against its contract."""
    return payload_model(envelope.type, envelope.version).model_validate(envelope.payload)


def build_envelope(
    payload: EventPayload,
    *,
    key: str,
    producer: str,
    correlation_id: str,
    tenant: str,
    causation_id: str | None = None,
    actor: str | None = None,
) -> Envelope:
    """Wrap a payload in an envelope with a fresh event id; `actor` defaults to the caller of
    the request being served, if any."""
    body: dict[str, Any] = payload.model_dump(mode="json")
    return Envelope(
        type=payload.event_type,
        version=payload.event_version,
        producer=producer,
        key=key,
        correlation_id=correlation_id,
        causation_id=causation_id,
        tenant=tenant,
        actor=actor if actor is not None else current_actor.get(),
        payload=body,
    )
