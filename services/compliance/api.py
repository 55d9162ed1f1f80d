"""Compliance HTTP routes: the evidence chain and its proofs, violations found by the
independent re-check, complaints, prohibited-language reviews, QA, reports and exports.

Every route reads and writes the caller's tenant only, except those about the log as a whole
(tree head, consistency proofs, checkpoints, verification): the log is one hash chain and one
Merkle tree for the platform, and they reveal only sizes and hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from services.compliance import service
from services.compliance.complaints import ComplaintStatus
from services.compliance.schemas import (
    AuditEntries,
    ChainVerification,
    CheckpointOut,
    ComplaintIn,
    ComplaintOut,
    Complaints,
    ComplaintStatusIn,
    ComplianceReport,
    ConsistencyProof,
    InclusionProof,
    LanguageReviewOut,
    PurgeIn,
    PurgeOut,
    QaPlan,
    QaReviewIn,
    QaReviewOut,
    RegulatorExport,
    TemplateIn,
    TranscriptIn,
    TreeHead,
    Violations,
)
from services.compliance.settings import ComplianceSettings
from shared.auth import Principal, Scope, requires
from shared.contracts import Severity
from shared.http import AUTH_RESPONSES, problem_responses
from shared.logging import correlation_id
from shared.runtime import runtime_of, unit_of_work

audit = APIRouter(prefix="/v1/audit", tags=["audit"], responses=AUTH_RESPONSES)
AuditReader = Annotated[Principal, requires(Scope.AUDIT_READ)]
#: Said of every route about the whole log (its routes need only AUDIT_READ).
PLATFORM_WIDE = (
    " Platform-wide: one log and one tree serve every tenant, and this reveals only sizes "
    "and hashes, never an entry's content or tenant."
)


@audit.get(
    "/entries",
    response_model=AuditEntries,
    summary="The caller's tenant's evidence entries, oldest first",
    responses=problem_responses(),
)
async def list_entries(
    request: Request,
    principal: AuditReader,
    case_id: Annotated[
        str | None, Query(min_length=1, max_length=200, description="The case (partition key).")
    ] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Return entries after this seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEntries:
    async with unit_of_work(request) as session:
        return await service.list_entries(
            session, tenant=principal.tenant, case_key=case_id, after_seq=after_seq, limit=limit
        )


@audit.get(
    "/verify",
    response_model=ChainVerification,
    summary="Recompute the hash chain and report the first broken link",
    description="Checks every entry, the stored tree and the latest checkpoint." + PLATFORM_WIDE,
    responses=problem_responses(),
)
async def verify(request: Request, principal: AuditReader) -> ChainVerification:
    settings = runtime_of(request).settings
    chunk = settings.verify_chunk_size if isinstance(settings, ComplianceSettings) else 5000
    async with unit_of_work(request) as session:
        return await service.verify_chain(session, chunk_size=chunk)


@audit.post(
    "/purge",
    response_model=PurgeOut,
    summary="Retention: remove the content of expired entries (hashes stay; logged as a purge)",
    description="Purges the caller's tenant's expired entries and closed complaints only.",
    responses=problem_responses(400, 413),
)
async def purge(
    body: PurgeIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.AUDIT_PURGE)],
) -> PurgeOut:
    settings = _settings(request)
    async with unit_of_work(request) as session:
        return await service.purge_expired(
            session,
            tenant=principal.tenant,
            now=_now(request),
            retention_days=settings.retention_days,
            retention_days_by_kind=settings.retention_days_by_kind,
            limit=body.limit,
            dry_run=body.dry_run,
            correlation_id=_correlation(),
            pii_key=settings.pii_key.get_secret_value().encode(),
        )


@audit.get(
    "/tree-head",
    response_model=TreeHead,
    summary="Merkle tree head of the log",
    description="The size and root hash of the whole log." + PLATFORM_WIDE,
    responses=problem_responses(),
)
async def get_tree_head(request: Request, principal: AuditReader) -> TreeHead:
    async with unit_of_work(request) as session:
        return await service.tree_head(session)


@audit.get(
    "/proof/{seq}",
    response_model=InclusionProof,
    summary="Inclusion proof of one of the caller's tenant's entries (RFC 6962 audit path)",
    description="An entry of another tenant is not found (404); the proof is against the "
    "platform-wide tree.",
    responses=problem_responses(404),
)
async def get_inclusion(
    seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    principal: AuditReader,
    tree_size: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> InclusionProof:
    async with unit_of_work(request) as session:
        return await service.inclusion(
            session, tenant=principal.tenant, seq=seq, tree_size=tree_size
        )


@audit.get(
    "/consistency",
    response_model=ConsistencyProof,
    summary="Consistency proof between two tree sizes (the log only grew)",
    description="Hashes proving the smaller tree is a prefix of the larger." + PLATFORM_WIDE,
    responses=problem_responses(),
)
async def get_consistency(
    request: Request,
    principal: AuditReader,
    first: Annotated[int, Query(ge=1, le=2**63 - 1)],
    second: Annotated[int, Query(ge=1, le=2**63 - 1)],
) -> ConsistencyProof:
    async with unit_of_work(request) as session:
        return await service.consistency(session, first=first, second=second)


@audit.get(
    "/checkpoints",
    response_model=list[CheckpointOut],
    summary="Signed tree heads, newest first (Ed25519; anchor them outside the system)",
    description="Signed sizes and root hashes of the whole log." + PLATFORM_WIDE,
    responses=problem_responses(),
)
async def get_checkpoints(
    request: Request, principal: AuditReader, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[CheckpointOut]:
    async with unit_of_work(request) as session:
        return await service.list_checkpoints(session, limit=limit)


def _settings(request: Request) -> ComplianceSettings:
    settings = runtime_of(request).settings
    return settings if isinstance(settings, ComplianceSettings) else ComplianceSettings()


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


def _correlation() -> str:
    return correlation_id.get() or str(uuid.uuid4())


def _recheck(request: Request) -> service.RecheckConfig:
    settings = _settings(request)
    return service.RecheckConfig(
        default_packs=settings.default_packs, hold_on=settings.hold_on_severities
    )


oversight = APIRouter(prefix="/v1", responses=AUTH_RESPONSES)
ComplaintsReader = Annotated[Principal, requires(Scope.COMPLAINTS_READ)]
ComplaintsWriter = Annotated[Principal, requires(Scope.COMPLAINTS_WRITE)]


@oversight.get(
    "/violations",
    response_model=Violations,
    tags=["re-check"],
    summary="Rules broken by contacts, found by compliance's own re-check",
    responses=problem_responses(),
)
async def list_violations(
    request: Request,
    principal: AuditReader,
    case_id: uuid.UUID | None = None,
    rule_id: Annotated[str | None, Query(max_length=40)] = None,
    severity: Severity | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Violations:
    async with unit_of_work(request) as session:
        return await service.list_violations(
            session,
            tenant=principal.tenant,
            case_id=case_id,
            rule_id=rule_id,
            severity=severity,
            since=since,
            until=until,
            limit=limit,
        )


@oversight.post(
    "/complaints",
    response_model=ComplaintOut,
    status_code=201,
    tags=["complaints"],
    summary="Take in a complaint (holds contact while open; SLA clocks start at receipt)",
    responses=problem_responses(400, 413),
)
async def open_complaint(
    body: ComplaintIn, request: Request, principal: ComplaintsWriter
) -> ComplaintOut:
    async with unit_of_work(request) as session:
        return await service.open_complaint(
            session,
            tenant=principal.tenant,
            body=body,
            now=_now(request),
            correlation_id=_correlation(),
            campaign_min_debtors=_settings(request).campaign_min_debtors,
        )


@oversight.get(
    "/complaints",
    response_model=Complaints,
    tags=["complaints"],
    summary="Complaints, newest first, with their SLA clocks",
    responses=problem_responses(),
)
async def list_complaints(
    request: Request,
    principal: ComplaintsReader,
    status: ComplaintStatus | None = None,
    debtor_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
    breached: Annotated[bool, Query(description="Only those with an SLA clock breached.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Complaints:
    async with unit_of_work(request) as session:
        return await service.list_complaints(
            session,
            tenant=principal.tenant,
            status=status,
            debtor_id=debtor_id,
            campaign_id=campaign_id,
            breached_only=breached,
            now=_now(request),
            limit=limit,
        )


@oversight.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintOut,
    tags=["complaints"],
    summary="A complaint with its status history and SLA clocks",
    responses=problem_responses(404),
)
async def get_complaint(
    complaint_id: uuid.UUID, request: Request, principal: ComplaintsReader
) -> ComplaintOut:
    async with unit_of_work(request) as session:
        return await service.get_complaint(
            session, tenant=principal.tenant, complaint_id=complaint_id, now=_now(request)
        )


@oversight.post(
    "/complaints/{complaint_id}/status",
    response_model=ComplaintOut,
    tags=["complaints"],
    summary="Acknowledge, investigate, resolve, reject, withdraw or reopen a complaint",
    responses=problem_responses(400, 404, 409, 413),
)
async def change_complaint_status(
    complaint_id: uuid.UUID,
    body: ComplaintStatusIn,
    request: Request,
    principal: ComplaintsWriter,
) -> ComplaintOut:
    async with unit_of_work(request) as session:
        return await service.change_complaint_status(
            session,
            tenant=principal.tenant,
            complaint_id=complaint_id,
            body=body,
            now=_now(request),
            correlation_id=_correlation(),
        )


@oversight.post(
    "/language/transcripts",
    response_model=LanguageReviewOut,
    tags=["prohibited language"],
    summary="Check a call transcript for prohibited language and the mandatory call steps",
    responses=problem_responses(400, 413),
)
async def review_transcript(
    body: TranscriptIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.TRANSCRIPTS_WRITE)],
) -> LanguageReviewOut:
    async with unit_of_work(request) as session:
        return await service.review_transcript(
            session,
            tenant=principal.tenant,
            body=body,
            now=_now(request),
            correlation_id=_correlation(),
            config=_recheck(request),
        )


@oversight.post(
    "/language/templates",
    response_model=LanguageReviewOut,
    tags=["prohibited language"],
    summary="Check a script or message template before use",
    responses=problem_responses(400, 413),
)
async def review_template(
    body: TemplateIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.RULES_READ)],
) -> LanguageReviewOut:
    async with unit_of_work(request) as session:
        return await service.review_template(
            session,
            tenant=principal.tenant,
            body=body,
            now=_now(request),
            correlation_id=_correlation(),
        )


@oversight.get(
    "/qa/plan",
    response_model=QaPlan,
    tags=["quality assurance"],
    summary="Contacts sampled for review: per team and week (supervisor), per month (QA)",
    responses=problem_responses(),
)
async def qa_plan(
    request: Request, principal: AuditReader, period_start: datetime, period_end: datetime
) -> QaPlan:
    settings = _settings(request)
    async with unit_of_work(request) as session:
        return await service.qa_plan(
            session,
            tenant=principal.tenant,
            period_start=period_start,
            period_end=period_end,
            salt=settings.qa_salt.get_secret_value().encode(),
            zone=settings.qa_time_zone,
        )


@oversight.post(
    "/qa/reviews",
    response_model=QaReviewOut,
    status_code=201,
    tags=["quality assurance"],
    summary="Record a review of a sampled contact (published as evidence)",
    responses=problem_responses(400, 404, 413),
)
async def record_qa_review(
    body: QaReviewIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.QA_WRITE)],
) -> QaReviewOut:
    async with unit_of_work(request) as session:
        return await service.record_qa_review(
            session,
            tenant=principal.tenant,
            body=body,
            now=_now(request),
            correlation_id=_correlation(),
        )


@oversight.get(
    "/reports/summary",
    response_model=ComplianceReport,
    tags=["reports"],
    summary="Violations, complaint rate per 1,000 accounts worked, SLA adherence, refusals, QA",
    responses=problem_responses(),
)
async def report(
    request: Request, principal: AuditReader, period_start: datetime, period_end: datetime
) -> ComplianceReport:
    async with unit_of_work(request) as session:
        return await service.report(
            session,
            tenant=principal.tenant,
            period_start=period_start,
            period_end=period_end,
            now=_now(request),
        )


@oversight.get(
    "/reports/export",
    response_model=RegulatorExport,
    tags=["reports"],
    summary="Regulator export for a case or period: why each contact was allowed, with proofs",
    responses={
        **problem_responses(),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON (with inclusion proofs) or CSV (one row per contact).",
        },
    },
)
async def regulator_export(
    request: Request,
    principal: AuditReader,
    case_id: uuid.UUID | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> RegulatorExport | Response:
    async with unit_of_work(request) as session:
        export = await service.regulator_export(
            session,
            tenant=principal.tenant,
            case_id=case_id,
            period_start=period_start,
            period_end=period_end,
            now=_now(request),
            default_packs=_settings(request).default_packs,
        )
    if format == "csv":
        return Response(content=service.export_csv(export), media_type="text/csv")
    return export


router = APIRouter()
router.include_router(audit)
router.include_router(oversight)
