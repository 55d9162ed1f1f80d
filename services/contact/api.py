"""Contact HTTP routes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.contact import service
from services.contact.domain import Channel
from services.contact.schemas import (
    AttemptOut,
    CaseAttempts,
    ContactDebtorExport,
    DecisionIn,
    DecisionOut,
    OutcomeRecorded,
    OutcomeReport,
    PolicyIn,
    PolicyOut,
    SimulationOut,
)
from services.contact.settings import ContactSettings
from shared.auth import Principal, Scope, requires
from shared.http import AUTH_RESPONSES, problem_responses
from shared.logging import correlation_id
from shared.runtime import runtime_of, unit_of_work

router = APIRouter(prefix="/v1", tags=["contact"], responses=AUTH_RESPONSES)


@router.get(
    "/cases/{case_id}/attempts",
    response_model=CaseAttempts,
    summary="Contact attempts planned for a case",
    responses=problem_responses(404),
)
async def get_case_attempts(
    case_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, requires(Scope.CONTACT_READ)],
) -> CaseAttempts:
    async with unit_of_work(request) as session:
        return await service.case_attempts(session, tenant=principal.tenant, case_id=case_id)


@router.get(
    "/attempts/{attempt_id}",
    response_model=AttemptOut,
    summary="One contact attempt",
    responses=problem_responses(404),
)
async def get_attempt(
    attempt_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, requires(Scope.CONTACT_READ)],
) -> AttemptOut:
    async with unit_of_work(request) as session:
        return await service.get_attempt(session, tenant=principal.tenant, attempt_id=attempt_id)


@router.get(
    "/debtors/{debtor_id}/export",
    response_model=ContactDebtorExport,
    tags=["privacy"],
    summary="Export everything contact holds about a debtor (data-subject access)",
    responses=problem_responses(404),
)
async def export_debtor(
    debtor_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, requires(Scope.PRIVACY_REQUESTS)],
) -> ContactDebtorExport:
    """Cases as contact knows them, attempts, outcomes, holds and preferences; the debtor's
    record itself is exported by cases (`GET /v1/debtors/{id}/export` there)."""
    async with unit_of_work(request) as session:
        return await service.export_debtor(
            session,
            tenant=principal.tenant,
            debtor_id=debtor_id,
            now=request.app.state.clock(),
        )


@router.post(
    "/contact/decisions",
    response_model=DecisionOut,
    summary="May this contact happen now? Every objecting rule and the next allowed moment",
    responses=problem_responses(400, 404, 413),
)
async def decide(
    body: DecisionIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.CONTACT_DECIDE)],
) -> DecisionOut:
    async with unit_of_work(request) as session:
        return await service.decide_contact(
            session,
            tenant=principal.tenant,
            body=body,
            default_packs=_packs(request),
            now=request.app.state.clock(),
        )


def _packs(request: Request) -> tuple[str, ...]:
    settings = runtime_of(request).settings
    return tuple(settings.rule_packs) if isinstance(settings, ContactSettings) else ("cn",)


@router.post(
    "/contact/outcomes",
    response_model=OutcomeRecorded,
    status_code=201,
    summary="Report what happened on an attempt (idempotent by outcome_id; never dropped)",
    responses={
        200: {
            "model": OutcomeRecorded,
            "description": "This outcome id was already recorded; nothing changed.",
        },
        **problem_responses(400, 404, 413),
    },
)
async def report_outcome(
    body: OutcomeReport,
    request: Request,
    response: Response,
    principal: Annotated[Principal, requires(Scope.CONTACT_OUTCOMES)],
) -> OutcomeRecorded:
    async with unit_of_work(request) as session:
        flags, duplicate = await service.record_outcome(
            session,
            outcome=body,
            tenant=principal.tenant,
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
            now=request.app.state.clock(),
            packs=_packs(request),
        )
    if duplicate:
        response.status_code = 200
    return OutcomeRecorded(outcome_id=body.outcome_id, flags=flags, duplicate=duplicate)


@router.get(
    "/dialer/worklist",
    response_model=list[AttemptOut],
    summary="Lease due attempts to a dialer (each re-checked against the rules as released)",
    responses=problem_responses(),
)
async def worklist(
    request: Request,
    principal: Annotated[Principal, requires(Scope.CONTACT_WORKLIST)],
    channel: Channel,
    dialer: Annotated[str, Query(min_length=1, max_length=100, description="Who takes them.")],
    automated: Annotated[
        bool, Query(description="IVR/robocall: cases escalated to a human are not leased.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    lease_seconds: Annotated[int, Query(ge=30, le=3600)] = 300,
) -> list[AttemptOut]:
    async with unit_of_work(request) as session:
        return await service.lease_worklist(
            session,
            tenant=principal.tenant,
            channel=channel,
            dialer=dialer,
            automated=automated,
            limit=limit,
            lease=timedelta(seconds=lease_seconds),
            now=request.app.state.clock(),
            packs=_packs(request),
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
        )


@router.get(
    "/contact/policy", response_model=PolicyOut, summary="The tenant's contact policy in force"
)
async def get_policy(
    request: Request, principal: Annotated[Principal, requires(Scope.RULES_READ)]
) -> PolicyOut:
    async with unit_of_work(request) as session:
        return await service.current_policy(
            session, tenant=principal.tenant, default_packs=_packs(request)
        )


@router.put(
    "/contact/policy",
    response_model=PolicyOut,
    summary="Set the rule packs and local rules (a new version; never looser than the law)",
    responses=problem_responses(400, 413),
)
async def put_policy(
    body: PolicyIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.RULES_ADMIN)],
) -> PolicyOut:
    async with unit_of_work(request) as session:
        return await service.set_policy(
            session,
            tenant=principal.tenant,
            body=body,
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
            now=request.app.state.clock(),
        )


@router.post(
    "/contact/simulate",
    response_model=SimulationOut,
    summary="Replay the stored attempt history under a proposed policy",
    responses=problem_responses(400, 413),
)
async def simulate(
    body: PolicyIn,
    request: Request,
    principal: Annotated[Principal, requires(Scope.RULES_READ)],
) -> SimulationOut:
    async with unit_of_work(request) as session:
        return await service.simulate_policy(session, tenant=principal.tenant, body=body)
