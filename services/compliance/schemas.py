"""HTTP response models of the compliance API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from services.compliance.complaints import ComplaintChannel, ComplaintStatus
from shared.contracts import ComplaintCategory, Severity


class AuditEntryOut(BaseModel):
    seq: int
    event_id: str
    topic: str
    event_type: str
    case_key: str | None
    occurred_at: datetime
    recorded_at: datetime
    envelope: dict[str, Any] | None = Field(
        description="The event as logged (personal data as keyed hashes); null once purged."
    )
    prev_hash: str
    entry_hash: str
    purged_at: datetime | None = None


class AuditEntries(BaseModel):
    entries: list[AuditEntryOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq to read the next page; null on the last page."
    )


class PurgeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"dry_run": True, "limit": 50000}]},
    )

    dry_run: StrictBool = Field(
        default=False, description="Count what would be purged, change nothing."
    )
    limit: StrictInt = Field(default=50_000, ge=1, le=1_000_000)


class PurgeOut(BaseModel):
    purge_id: uuid.UUID | None = Field(description="Null on a dry run or when nothing expired.")
    entries: int
    complaints: int = Field(description="Closed complaints whose text was removed.")
    # [first, last] pairs. Not `tuple[int, int]`: its `prefixItems` schema trips tools
    # (schemathesis 4 among them) that still read tuples as draft-4 `items` arrays.
    seq_ranges: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="Purged [first seq, last seq] ranges, inclusive."
    )
    dry_run: bool
    held_cases: int = Field(description="Expired cases kept: an open complaint holds them.")


class ChainVerification(BaseModel):
    """Result of recomputing the whole chain from the first entry."""

    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None


class TreeHead(BaseModel):
    """RFC 6962 tree head over the evidence log: anchor it anywhere outside the system."""

    tree_size: int
    root_hash: str = Field(description="Hex SHA-256 Merkle root (RFC 6962 hashing).")


class InclusionProof(BaseModel):
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]
    root_hash: str


class ConsistencyProof(BaseModel):
    first_size: int
    second_size: int
    first_root: str
    second_root: str
    proof: list[str]


class CheckpointOut(BaseModel):
    model_config = {"from_attributes": True}

    tree_size: int
    root_hash: str
    issued_at: datetime
    key_id: str
    public_key: str
    signature: str


# --- Independent re-check --------------------------------------------------------------------


class ViolationOut(BaseModel):
    violation_id: uuid.UUID
    subject: str
    rule_id: str
    citation: str
    severity: Severity
    reason: str
    case_id: uuid.UUID
    debtor_id: uuid.UUID | None
    agency: str | None
    collector_id: uuid.UUID | None
    occurred_at: datetime
    detected_at: datetime
    evidence_seqs: list[int]


class Violations(BaseModel):
    violations: list[ViolationOut]


# --- Complaints ------------------------------------------------------------------------------


class ComplaintIn(BaseModel):
    """A complaint as received, on any channel (a letter may be entered days later: back-date
    `received_at`, the SLA clocks run from it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "debtor_id": "6f1c2e4a-1d3b-4c55-9a7e-2b8f0c1d2e3f",
                    "case_id": "0b7d7f2e-9c1a-4e0b-8d55-3f6a7c2b1e90",
                    "channel": "phone",
                    "category": "harassment",
                    "text": "催收员一天打了十几个电话，还打给我的同事。",
                    "received_by": "agent-wang",
                }
            ]
        },
    )

    debtor_id: uuid.UUID
    case_id: uuid.UUID | None = None
    channel: ComplaintChannel
    category: ComplaintCategory
    text: str = Field(min_length=1, max_length=20_000)
    received_at: AwareDatetime | None = Field(
        default=None, description="Defaults to now; may be back-dated, never in the future."
    )
    received_by: str = Field(min_length=1, max_length=200)


class ComplaintStatusIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "acknowledged", "changed_by": "agent-wang", "note": "called back"}
            ]
        },
    )

    status: ComplaintStatus
    changed_by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


class ComplaintChangeOut(BaseModel):
    status: ComplaintStatus
    changed_by: str
    note: str
    changed_at: datetime


class SlaOut(BaseModel):
    first_response_due: datetime
    first_response_at: datetime | None
    first_response_met: bool | None = Field(description="Null while the clock runs in time.")
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_met: bool | None
    breached: list[str]


class ComplaintOut(BaseModel):
    complaint_id: uuid.UUID
    debtor_id: uuid.UUID
    case_id: uuid.UUID | None
    channel: ComplaintChannel
    category: ComplaintCategory
    text: str
    status: ComplaintStatus
    open: bool = Field(description="An open complaint holds contact on the case.")
    received_at: datetime
    campaign_id: uuid.UUID | None = Field(
        description="Set when the same text came from many debtors (a review signal only)."
    )
    similar_complaints: int = Field(description="Earlier complaints with near-identical text.")
    sla: SlaOut
    history: list[ComplaintChangeOut]


class Complaints(BaseModel):
    complaints: list[ComplaintOut]


# --- Prohibited language ---------------------------------------------------------------------


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: Literal["agent", "debtor", "other"]
    text: str = Field(max_length=20_000)


class TranscriptIn(BaseModel):
    """A call transcript from the dialer or a transcription system, speaker by speaker."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "case_id": "0b7d7f2e-9c1a-4e0b-8d55-3f6a7c2b1e90",
                    "attempt_id": "3c0e4b7a-8d1f-4e2a-9b6c-5d7e8f901a2b",
                    "turns": [
                        {"speaker": "agent", "text": "您好，请问是张伟先生本人吗？"},
                        {"speaker": "debtor", "text": "是的。"},
                        {
                            "speaker": "agent",
                            "text": "您的信用卡逾期金额为5000元，可以办理分期还款计划。",
                        },
                    ],
                }
            ]
        },
    )

    case_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = None
    turns: list[TurnIn] = Field(min_length=1, max_length=2000)
    language: Literal["zh", "en"] | None = None


class TemplateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "【某某银行】您好，我是催收专员，工号1234。您的账户已逾期，请及时还款。"}
            ]
        },
    )

    text: str = Field(min_length=1, max_length=20_000)
    name: str | None = Field(default=None, max_length=200)


class LanguageHitOut(BaseModel):
    phrase_id: str
    category: str
    rule_id: str
    severity: str
    start: int
    end: int
    matched: str
    turn: int | None


class LanguageReviewOut(BaseModel):
    review_id: uuid.UUID
    ok: bool
    phrase_list_version: str
    hits: list[LanguageHitOut]
    steps_found: list[str] = Field(default_factory=list)
    steps_missing: list[str] = Field(default_factory=list)
    ordering_problems: list[str] = Field(default_factory=list)
    identified: bool | None = Field(
        default=None, description="Templates: does it say who is collecting?"
    )


# --- Quality assurance -----------------------------------------------------------------------


class ReviewAssignmentOut(BaseModel):
    subject: str
    reviewer_kind: str
    period: str
    supervisor: str | None


class QaPlan(BaseModel):
    contacts_considered: int
    assignments: list[ReviewAssignmentOut]


class QaReviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": "outcome:3c0e4b7a-8d1f-4e2a-9b6c-5d7e8f901a2b",
                    "reviewer_kind": "qa",
                    "reviewer": "qa-zhao",
                    "period": "2026-11",
                    "score": 85,
                    "passed": True,
                    "findings": [],
                }
            ]
        },
    )

    subject: str = Field(min_length=1, max_length=80, pattern=r"^(outcome|planned):")
    reviewer_kind: Literal["supervisor", "qa"]
    reviewer: str = Field(min_length=1, max_length=200)
    period: str = Field(pattern=r"^\d{4}-(W\d{2}|\d{2})$")
    score: StrictInt = Field(ge=0, le=100)
    passed: StrictBool
    findings: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=50
    )


class QaReviewOut(QaReviewIn):
    review_id: uuid.UUID
    reviewed_at: datetime


# --- Reports and the regulator export --------------------------------------------------------


class CountBy(BaseModel):
    key: str | None
    count: int


class ComplianceReport(BaseModel):
    period_start: datetime
    period_end: datetime
    contacts: int
    accounts_worked: int = Field(description="Distinct cases with a contact in the period.")
    violations_by_rule: list[CountBy]
    violations_by_severity: list[CountBy]
    violations_by_agency: list[CountBy]
    violations_by_collector: list[CountBy]
    complaints: int
    complaints_per_1000_accounts: float | None
    first_response_sla_met: float | None = Field(description="Share of decided clocks met.")
    resolution_sla_met: float | None
    blocked_by_rule: list[CountBy]
    qa_reviews: int
    qa_pass_rate: float | None


class ExportedEvidence(BaseModel):
    seq: int
    event_type: str
    entry_hash: str
    leaf_index: int
    audit_path: list[str] = Field(description="Inclusion proof (hex) against `tree_size`.")


class ExportedContact(BaseModel):
    """One contact and why it was (or was not) allowed, with the evidence to prove it."""

    subject: str
    case_id: uuid.UUID
    channel: str
    result: str | None
    occurred_at: datetime
    local_time: str | None
    time_zone: str | None
    packs: list[str]
    pack_versions: dict[str, str]
    policy_version: int | None
    holds_in_force: list[str]
    opted_out: list[str]
    consents: list[str]
    allowed: bool
    findings: list[str]
    explanation: str
    evidence: list[ExportedEvidence]


class RegulatorExport(BaseModel):
    generated_at: datetime
    case_id: uuid.UUID | None
    period_start: datetime | None
    period_end: datetime | None
    tree_size: int
    root_hash: str
    contacts: list[ExportedContact]
    violations: list[ViolationOut]
