"""Cases HTTP routes: parse, call the service in one transaction, map errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import AwareDatetime
from sqlalchemy import exc as sa_exc

from services.cases import importer, privacy, service
from services.cases.domain import Stage
from services.cases.models import ImportJob
from services.cases.schemas import (
    AgencyIn,
    AgencyOut,
    AllocationIn,
    AllocationOut,
    AssignIn,
    CaseCreate,
    CaseOut,
    CasePage,
    CloseCase,
    CollectorIn,
    CollectorOut,
    DailyRunOut,
    DebtorExport,
    DebtorOut,
    ErasureIn,
    ErasureOut,
    HoldCreate,
    HoldOut,
    HoldRelease,
    ImportJobOut,
    LockRelease,
    NextCaseIn,
    NoteIn,
    PaymentIn,
    PaymentOut,
    PlacementIn,
    PlanIn,
    PlanOut,
    PreferencesIn,
    PromiseIn,
    PromiseOut,
    QueueIn,
    QueueOut,
    Reach,
    ReachChannel,
    RecallIn,
    StageChange,
    TeamIn,
    TeamOut,
    Timeline,
    TimelineEntryOut,
)
from shared.auth import ClientKind, Forbidden, Principal, Scope, requires
from shared.http import AUTH_RESPONSES, Conflict, DomainError, NotFound, problem_responses
from shared.logging import correlation_id
from shared.runtime import unit_of_work

router = APIRouter(prefix="/v1", responses=AUTH_RESPONSES)

Reader = Annotated[Principal, requires(Scope.CASES_READ)]
Reacher = Annotated[Principal, requires(Scope.CASES_REACH)]
Writer = Annotated[Principal, requires(Scope.CASES_WRITE)]
PaymentTaker = Annotated[Principal, requires(Scope.PAYMENTS_WRITE)]
TeamsAdmin = Annotated[Principal, requires(Scope.TEAMS_ADMIN)]
QueueWorker = Annotated[Principal, requires(Scope.QUEUE_WORK)]
JobRunner = Annotated[Principal, requires(Scope.JOBS_RUN)]


def collector_of(principal: Principal) -> uuid.UUID | None:
    """The collector a collector's own credential stands for (its subject); None for the other
    kinds, which see every case of their tenant."""
    if principal.kind is not ClientKind.COLLECTOR:
        return None
    try:
        return uuid.UUID(principal.subject or "")
    except ValueError:
        raise Forbidden(
            f"collector credential {principal.client!r} names no collector: without a subject "
            "it cannot tell which cases are its own"
        ) from None


def acting_collector(principal: Principal, named: uuid.UUID) -> uuid.UUID:
    """The collector a queue route works for: a collector takes and gives back cases only for
    itself."""
    own = collector_of(principal)
    if own is not None and own != named:
        raise Forbidden(f"a collector credential may only work for collector {own}, not {named}")
    return named


def intake_by(principal: Principal) -> Principal:
    """Intake (a case, an import) belongs to the CRM: a collector would open cases it could not
    see, since it sees only the cases assigned to it."""
    if principal.kind is ClientKind.COLLECTOR:
        raise Forbidden("a collector credential may not open cases or import them")
    return principal


def context(request: Request, principal: Principal) -> service.Context:
    """Now (from the app's clock), the correlation id, the caller's tenant (and, for a
    collector, whose cases it may see) and the case policy."""
    return service.Context(
        now=request.app.state.clock(),
        correlation_id=correlation_id.get() or str(uuid.uuid4()),
        tenant=principal.tenant,
        policy=request.app.state.policy,
        collector_id=collector_of(principal),
    )


def _as_of(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return service.end_of_day(value)


AsOf = Annotated[
    AwareDatetime | date | None,
    Query(
        description="A past instant (ISO 8601 with offset) or date (its end, UTC): the case as "
        "it stood then.",
        examples=["2026-11-01"],
    ),
]


# --- cases ---------------------------------------------------------------------------------------


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseOut,
    tags=["cases"],
    summary="Open a case for a delinquent account",
    responses=problem_responses(400, 409, 413),
)
async def open_case(
    body: CaseCreate,
    request: Request,
    principal: Writer,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Retries with the same key and body return the first response.",
        ),
    ] = None,
) -> CaseOut:
    """Validates, writes the case and its `case.opened` event in one transaction."""
    intake_by(principal)
    try:
        async with unit_of_work(request) as session:
            result = await service.open_case(
                session,
                command=body,
                idempotency_key=idempotency_key,
                ctx=context(request, principal),
            )
    except sa_exc.IntegrityError:
        # The unique indexes said no (everything was rolled back): say which one.
        async with unit_of_work(request) as session:
            existing = await service.open_case_of(
                session, account_id=body.account_id, tenant=principal.tenant
            )
        if existing is not None:
            raise Conflict(f"account {body.account_id} already has open case {existing}") from None
        raise Conflict(
            f"a concurrent request for account {body.account_id} used the same Idempotency-Key "
            "or created the same debtor; retry"
        ) from None
    response.headers["Location"] = f"/v1/cases/{result.case.id}"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result.case


@router.get(
    "/cases",
    response_model=CasePage,
    tags=["cases"],
    summary="Search cases",
    responses=problem_responses(422),
)
async def list_cases(
    request: Request,
    principal: Reader,
    status: Literal["open", "closed"] | None = None,
    bucket: Annotated[list[str] | None, Query(description="DPD bucket, e.g. 16-30.")] = None,
    stage: Annotated[list[Stage] | None, Query()] = None,
    tier: Annotated[list[Literal["high", "medium", "low"]] | None, Query()] = None,
    team_id: uuid.UUID | None = None,
    collector_id: uuid.UUID | None = None,
    agency_id: uuid.UUID | None = None,
    on_hold: bool | None = None,
    tag: Annotated[list[str] | None, Query(max_length=40)] = None,
    portfolio: Annotated[list[str] | None, Query()] = None,
    min_balance: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
    max_balance: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    debtor_ref: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CasePage:
    """Highest priority first (then oldest); `next_cursor` pages on without gaps or repeats. A
    collector's own credential lists only the cases assigned to (or taken by) that collector."""
    ctx = context(request, principal)
    flt = service.CaseFilter(
        status=status,
        buckets=bucket or (),
        stages=[s.value for s in stage or ()],
        risk_tiers=tier or (),
        team_id=team_id,
        collector_id=collector_id,
        agency_id=agency_id,
        on_hold=on_hold,
        tags=tag or (),
        portfolios=portfolio or (),
        min_balance=min_balance,
        max_balance=max_balance,
        account_id=account_id,
        debtor_ref=debtor_ref,
    )
    async with unit_of_work(request) as session:
        return await service.list_cases(session, flt=flt, limit=limit, cursor=cursor, ctx=ctx)


@router.get(
    "/cases/{case_id}",
    response_model=CaseOut,
    tags=["cases"],
    summary="Read a case, now or as it stood on a past date",
    responses=problem_responses(404),
)
async def get_case(
    case_id: uuid.UUID, request: Request, principal: Reader, as_of: AsOf = None
) -> CaseOut:
    ctx = context(request, principal)
    async with unit_of_work(request) as session:
        return await service.get_case(session, case_id=case_id, ctx=ctx, as_of=_as_of(as_of))


@router.get(
    "/cases/{case_id}/reach",
    response_model=Reach,
    tags=["dialers"],
    summary="Where a dialer may reach the case's debtor on a channel (clear numbers)",
    responses=problem_responses(404),
)
async def get_reach(
    case_id: uuid.UUID,
    request: Request,
    principal: Reacher,
    channel: Annotated[ReachChannel, Query(description="The channel about to be used.")],
) -> Reach:
    """No event carries a debtor's number or address: a dialer asks here, one case at a
    time, right before the contact it planned."""
    ctx = context(request, principal)
    async with unit_of_work(request) as session:
        return await service.reach(session, case_id=case_id, channel=channel, ctx=ctx)


@router.get(
    "/cases/{case_id}/timeline",
    response_model=Timeline,
    tags=["cases"],
    summary="Every change to the case, in order",
    responses=problem_responses(404),
)
async def get_timeline(
    case_id: uuid.UUID, request: Request, principal: Reader, as_of: AsOf = None
) -> Timeline:
    async with unit_of_work(request) as session:
        return await service.timeline(
            session, case_id=case_id, ctx=context(request, principal), as_of=_as_of(as_of)
        )


@router.post(
    "/cases/{case_id}/notes",
    status_code=201,
    response_model=TimelineEntryOut,
    tags=["cases"],
    summary="Add a note to the timeline",
    responses=problem_responses(400, 404, 413),
)
async def add_note(
    case_id: uuid.UUID, body: NoteIn, request: Request, principal: Writer
) -> TimelineEntryOut:
    async with unit_of_work(request) as session:
        return await service.add_note(
            session,
            case_id=case_id,
            author=body.author,
            text=body.text,
            ctx=context(request, principal),
        )


@router.post(
    "/cases/{case_id}/stage",
    response_model=CaseOut,
    tags=["cases"],
    summary="Move a case to the legal or restructuring track (or back)",
    responses=problem_responses(400, 404, 409, 413),
)
async def change_stage(
    case_id: uuid.UUID, body: StageChange, request: Request, principal: Writer
) -> CaseOut:
    async with unit_of_work(request) as session:
        return await service.change_stage(
            session,
            case_id=case_id,
            stage=Stage(body.stage),
            reason=body.reason,
            by=body.changed_by,
            ctx=context(request, principal),
        )


@router.post(
    "/cases/{case_id}/close",
    response_model=CaseOut,
    tags=["cases"],
    summary="Close a case: settled, restructured, written off, sold, legal",
    responses=problem_responses(400, 404, 409, 413),
)
async def close_case(
    case_id: uuid.UUID, body: CloseCase, request: Request, principal: Writer
) -> CaseOut:
    """Publishes `case.closed`; open promises are cancelled and contact stops."""
    async with unit_of_work(request) as session:
        return await service.close_case(
            session,
            case_id=case_id,
            closure=body.closure,
            reason=body.reason,
            by=body.closed_by,
            ctx=context(request, principal),
        )


# --- debtors -------------------------------------------------------------------------------------


@router.get(
    "/debtors/{debtor_id}",
    response_model=DebtorOut,
    tags=["debtors"],
    summary="Read a debtor",
    responses=problem_responses(404),
)
async def get_debtor(debtor_id: uuid.UUID, request: Request, principal: Reader) -> DebtorOut:
    async with unit_of_work(request) as session:
        return await service.get_debtor(
            session, debtor_id=debtor_id, ctx=context(request, principal)
        )


@router.put(
    "/debtors/{debtor_id}/preferences",
    response_model=DebtorOut,
    tags=["debtors"],
    summary="Set the debtor's channel opt-outs and consents",
    responses=problem_responses(400, 404, 413),
)
async def set_preferences(
    debtor_id: uuid.UUID, body: PreferencesIn, request: Request, principal: Writer
) -> DebtorOut:
    """Replaces the whole set; contact stops using an opted-out channel for every debt of this
    person and withdraws attempts already planned on it."""
    async with unit_of_work(request) as session:
        return await service.set_preferences(
            session, debtor_id=debtor_id, command=body, ctx=context(request, principal)
        )


# --- data-subject requests (services/cases/privacy.py) ------------------------------------------


@router.get(
    "/debtors/{debtor_id}/export",
    response_model=DebtorExport,
    tags=["privacy"],
    summary="Export everything cases holds about a debtor (data-subject access)",
    responses=problem_responses(404),
)
async def export_debtor(
    debtor_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, requires(Scope.PRIVACY_REQUESTS)],
) -> DebtorExport:
    """The debtor record and every case with holds, promises, plans, payments, notes and
    timeline, decrypted; after an erasure only what was retained. Contact's attempts and
    outcomes come from contact's `GET /v1/debtors/{id}/export`; the evidence log and
    complaints from compliance (`/v1/reports/export?case_id=`, `/v1/complaints?debtor_id=`)."""
    async with unit_of_work(request) as session:
        return await privacy.export_debtor(
            session, debtor_id=debtor_id, ctx=context(request, principal)
        )


@router.post(
    "/debtors/{debtor_id}/erasure",
    response_model=ErasureOut,
    tags=["privacy"],
    summary="Erase a debtor's personal data, keeping what the law requires",
    responses=problem_responses(400, 404, 409, 413),
)
async def erase_debtor(
    debtor_id: uuid.UUID,
    body: ErasureIn,
    request: Request,
    response: Response,
    principal: Annotated[Principal, requires(Scope.PRIVACY_REQUESTS)],
) -> ErasureOut:
    """409 while a case is open (the debt is still collected), for an erased debtor, or for a
    request_ref already used for another debtor; the same request_ref again replays the first
    result. Closed cases inside the retention of financial records keep those records, keyed
    by the debtor id only; publishes `debtor.erased`."""
    ctx = context(request, principal)
    try:
        async with unit_of_work(request) as session:
            result = await privacy.erase_debtor(
                session,
                debtor_id=debtor_id,
                command=body,
                requested_by=principal.actor,
                ctx=ctx,
            )
    except sa_exc.IntegrityError:
        # A concurrent request with the same request_ref committed first: replay its result.
        async with unit_of_work(request) as session:
            previous = await privacy.erasure_of(session, request_ref=body.request_ref, ctx=ctx)
            if previous is None:
                raise
            result = privacy.replay(previous, debtor_id=debtor_id)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result.erasure


# --- holds ---------------------------------------------------------------------------------------


@router.post(
    "/cases/{case_id}/holds",
    status_code=201,
    response_model=HoldOut,
    tags=["holds"],
    summary="Place a hold that blocks contact",
    responses=problem_responses(400, 404, 409, 413),
)
async def place_hold(
    case_id: uuid.UUID, body: HoldCreate, request: Request, principal: Writer
) -> HoldOut:
    """Publishes `case.hold_placed`; contact cancels live attempts on it."""
    async with unit_of_work(request) as session:
        return await service.place_hold(
            session, case_id=case_id, command=body, ctx=context(request, principal)
        )


@router.get(
    "/cases/{case_id}/holds",
    response_model=list[HoldOut],
    tags=["holds"],
    summary="Holds on a case, past and present",
    responses=problem_responses(404),
)
async def list_holds(case_id: uuid.UUID, request: Request, principal: Reader) -> list[HoldOut]:
    async with unit_of_work(request) as session:
        return await service.list_holds(session, case_id=case_id, ctx=context(request, principal))


@router.post(
    "/cases/{case_id}/holds/{hold_id}/release",
    response_model=HoldOut,
    tags=["holds"],
    summary="Release a hold",
    responses=problem_responses(400, 404, 409, 413),
)
async def release_hold(
    case_id: uuid.UUID, hold_id: uuid.UUID, body: HoldRelease, request: Request, principal: Writer
) -> HoldOut:
    async with unit_of_work(request) as session:
        return await service.release_hold(
            session,
            case_id=case_id,
            hold_id=hold_id,
            released_by=body.released_by,
            reason=body.reason,
            ctx=context(request, principal),
        )


# --- payments, promises, plans -------------------------------------------------------------------


@router.post(
    "/cases/{case_id}/payments",
    status_code=201,
    response_model=PaymentOut,
    tags=["payments"],
    summary="Record a payment (idempotent by external_payment_id)",
    responses={
        200: {
            "model": PaymentOut,
            "description": "A repeat of a recorded external_payment_id: the first result.",
        },
        **problem_responses(400, 404, 409, 413),
    },
)
async def record_payment(
    case_id: uuid.UUID,
    body: PaymentIn,
    request: Request,
    principal: PaymentTaker,
    response: Response,
) -> PaymentOut:
    """Allocates fees → interest → principal, updates balance and DPD, resolves promises, and
    closes the case as settled when nothing is left. A repeat returns the first result (200)."""
    try:
        async with unit_of_work(request) as session:
            result = await service.record_payment(
                session, case_id=case_id, command=body, ctx=context(request, principal)
            )
    except sa_exc.IntegrityError:
        raise Conflict(
            f"payment {body.external_payment_id} was recorded by a concurrent request"
        ) from None
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return result.payment


@router.get(
    "/cases/{case_id}/payments",
    response_model=list[PaymentOut],
    tags=["payments"],
    summary="Payments on a case",
    responses=problem_responses(404),
)
async def list_payments(
    case_id: uuid.UUID, request: Request, principal: Reader
) -> list[PaymentOut]:
    async with unit_of_work(request) as session:
        return await service.list_payments(
            session, case_id=case_id, ctx=context(request, principal)
        )


@router.post(
    "/cases/{case_id}/promises",
    status_code=201,
    response_model=PromiseOut,
    tags=["promises"],
    summary="Record a promise to pay",
    responses=problem_responses(400, 404, 409, 413),
)
async def take_promise(
    case_id: uuid.UUID, body: PromiseIn, request: Request, principal: Writer
) -> PromiseOut:
    async with unit_of_work(request) as session:
        return await service.take_promise(
            session, case_id=case_id, command=body, ctx=context(request, principal)
        )


@router.get(
    "/cases/{case_id}/promises",
    response_model=list[PromiseOut],
    tags=["promises"],
    summary="Promises and plan instalments on a case",
    responses=problem_responses(404),
)
async def list_promises(
    case_id: uuid.UUID, request: Request, principal: Reader
) -> list[PromiseOut]:
    async with unit_of_work(request) as session:
        return await service.list_promises(
            session, case_id=case_id, ctx=context(request, principal)
        )


@router.post(
    "/cases/{case_id}/plans",
    status_code=201,
    response_model=PlanOut,
    tags=["promises"],
    summary="Agree an instalment plan or a settlement offer",
    responses=problem_responses(400, 403, 404, 409, 413),
)
async def create_plan(
    case_id: uuid.UUID, body: PlanIn, request: Request, principal: Writer
) -> PlanOut:
    """403 when the approver's role may not grant this many instalments or this waiver."""
    async with unit_of_work(request) as session:
        return await service.create_plan(
            session, case_id=case_id, command=body, ctx=context(request, principal)
        )


# --- assignment ----------------------------------------------------------------------------------


@router.post(
    "/teams",
    status_code=201,
    response_model=TeamOut,
    tags=["assignment"],
    summary="Create a team",
    responses=problem_responses(400, 409, 413),
)
async def create_team(body: TeamIn, request: Request, principal: TeamsAdmin) -> TeamOut:
    async with unit_of_work(request) as session:
        return await service.create_team(session, command=body, tenant=principal.tenant)


@router.get(
    "/teams",
    response_model=list[TeamOut],
    tags=["assignment"],
    summary="Teams",
    responses=problem_responses(),
)
async def list_teams(request: Request, principal: TeamsAdmin) -> list[TeamOut]:
    async with unit_of_work(request) as session:
        return await service.list_teams(session, tenant=principal.tenant)


@router.post(
    "/collectors",
    status_code=201,
    response_model=CollectorOut,
    tags=["assignment"],
    summary="Add a collector to a team",
    responses=problem_responses(400, 413, 422),
)
async def create_collector(
    body: CollectorIn, request: Request, principal: TeamsAdmin
) -> CollectorOut:
    async with unit_of_work(request) as session:
        return await service.create_collector(session, command=body, tenant=principal.tenant)


@router.get(
    "/collectors",
    response_model=list[CollectorOut],
    tags=["assignment"],
    summary="Collectors with their current load",
    responses=problem_responses(),
)
async def list_collectors(
    request: Request, principal: TeamsAdmin, team_id: uuid.UUID | None = None
) -> list[CollectorOut]:
    async with unit_of_work(request) as session:
        return await service.list_collectors(session, team_id=team_id, tenant=principal.tenant)


@router.post(
    "/agencies",
    status_code=201,
    response_model=AgencyOut,
    tags=["assignment"],
    summary="Register an outside collection agency",
    responses=problem_responses(400, 409, 413),
)
async def create_agency(body: AgencyIn, request: Request, principal: TeamsAdmin) -> AgencyOut:
    async with unit_of_work(request) as session:
        return await service.create_agency(session, command=body, tenant=principal.tenant)


@router.get(
    "/agencies",
    response_model=list[AgencyOut],
    tags=["assignment"],
    summary="Agencies",
    responses=problem_responses(),
)
async def list_agencies(request: Request, principal: TeamsAdmin) -> list[AgencyOut]:
    async with unit_of_work(request) as session:
        return await service.list_agencies(session, tenant=principal.tenant)


@router.post(
    "/queues",
    status_code=201,
    response_model=QueueOut,
    tags=["assignment"],
    summary="Create a work queue",
    responses=problem_responses(400, 409, 413),
)
async def create_queue(body: QueueIn, request: Request, principal: TeamsAdmin) -> QueueOut:
    async with unit_of_work(request) as session:
        return await service.create_queue(
            session, command=body, policy=request.app.state.policy, tenant=principal.tenant
        )


@router.get(
    "/queues",
    response_model=list[QueueOut],
    tags=["assignment"],
    summary="Queues",
    responses=problem_responses(),
)
async def list_queues(request: Request, principal: TeamsAdmin) -> list[QueueOut]:
    async with unit_of_work(request) as session:
        return await service.list_queues(session, tenant=principal.tenant)


@router.post(
    "/queues/{queue_id}/next",
    response_model=CaseOut,
    tags=["assignment"],
    summary="Give a collector the next case and lock it to them",
    responses={
        204: {"description": "Nothing left in the queue for this collector."},
        **problem_responses(400, 404, 413),
    },
)
async def next_case(
    queue_id: uuid.UUID, body: NextCaseIn, request: Request, principal: QueueWorker
) -> Any:
    """Highest priority first; skips held, placed, locked or someone else's cases. A collector's
    own credential takes cases only for itself (403 when the body names another collector)."""
    collector_id = acting_collector(principal, body.collector_id)
    async with unit_of_work(request) as session:
        case = await service.next_case(
            session,
            queue_id=queue_id,
            collector_id=collector_id,
            lock_minutes=body.lock_minutes,
            ctx=context(request, principal),
        )
    if case is None:
        return Response(status_code=204)
    return case


@router.post(
    "/cases/{case_id}/release",
    response_model=CaseOut,
    tags=["assignment"],
    summary="Give back a case taken from a queue",
    responses=problem_responses(400, 404, 409, 413),
)
async def release_lock(
    case_id: uuid.UUID, body: LockRelease, request: Request, principal: QueueWorker
) -> CaseOut:
    """A collector's own credential gives back only its own cases (403 for another's)."""
    collector_id = acting_collector(principal, body.collector_id)
    async with unit_of_work(request) as session:
        return await service.release_lock(
            session,
            case_id=case_id,
            collector_id=collector_id,
            ctx=context(request, principal),
        )


@router.post(
    "/cases/{case_id}/assign",
    response_model=CaseOut,
    tags=["assignment"],
    summary="Assign a case to a collector",
    responses=problem_responses(400, 404, 409, 413),
)
async def assign_case(
    case_id: uuid.UUID, body: AssignIn, request: Request, principal: TeamsAdmin
) -> CaseOut:
    async with unit_of_work(request) as session:
        return await service.assign_case(
            session,
            case_id=case_id,
            collector_id=body.collector_id,
            by=body.assigned_by,
            ctx=context(request, principal),
        )


@router.post(
    "/cases/{case_id}/placement",
    response_model=CaseOut,
    tags=["assignment"],
    summary="Place a case with an outside agency",
    responses=problem_responses(400, 404, 409, 413),
)
async def place_case(
    case_id: uuid.UUID, body: PlacementIn, request: Request, principal: TeamsAdmin
) -> CaseOut:
    async with unit_of_work(request) as session:
        return await service.place_with_agency(
            session,
            case_id=case_id,
            agency_id=body.agency_id,
            by=body.placed_by,
            ctx=context(request, principal),
        )


@router.post(
    "/cases/{case_id}/recall",
    response_model=CaseOut,
    tags=["assignment"],
    summary="Recall a case from its agency",
    responses=problem_responses(400, 404, 409, 413),
)
async def recall_case(
    case_id: uuid.UUID, body: RecallIn, request: Request, principal: TeamsAdmin
) -> CaseOut:
    async with unit_of_work(request) as session:
        return await service.recall_from_agency(
            session,
            case_id=case_id,
            by=body.recalled_by,
            reason=body.reason,
            ctx=context(request, principal),
        )


@router.post(
    "/allocation/run",
    response_model=AllocationOut,
    tags=["assignment"],
    summary="Allocate unassigned cases by skill, language, region and load",
    responses=problem_responses(400, 413),
)
async def run_allocation(
    body: AllocationIn, request: Request, principal: TeamsAdmin
) -> AllocationOut:
    async with unit_of_work(request) as session:
        return await service.allocate(
            session,
            team_id=body.team_id,
            limit=body.limit,
            by=body.assigned_by,
            ctx=context(request, principal),
        )


@router.post(
    "/jobs/daily-run",
    response_model=DailyRunOut,
    tags=["operations"],
    summary="Run the promise, hold-expiry and DPD-roll job now",
    responses=problem_responses(),
)
async def daily_run(request: Request, principal: JobRunner) -> DailyRunOut:
    """The same job the service runs on its own every `daily_run_interval_s`, one slice of it,
    but for the caller's tenant only: one tenant's operator neither triggers nor is named as
    the cause of changes to another tenant's cases (the service's own run covers them all)."""
    async with unit_of_work(request) as session:
        return await service.daily_run(session, ctx=context(request, principal))


# --- bulk import ---------------------------------------------------------------------------------

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file itself: CSV with a header row, or JSON Lines (one case a line). "
        f"Columns: {', '.join(importer.COLUMNS)}; required: {', '.join(importer.REQUIRED)}.",
        "content": {
            "text/csv": {
                "schema": {"type": "string", "format": "binary"},
                "example": "account_id,debtor_name,time_zone,product,currency,principal,due_date\n"
                "LN-1,张三,Asia/Shanghai,consumer_loan,CNY,1200.00,2026-10-01\n",
            },
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportJobOut,
    tags=["imports"],
    summary="Upload a CSV or JSONL file of cases; it is imported as a job",
    responses=problem_responses(400, 413, 415),
    openapi_extra=_UPLOAD_BODY,
)
async def upload_import(
    request: Request,
    principal: Writer,
    response: Response,
    filename: Annotated[str, Query(min_length=1, max_length=200, examples=["book-2026-11.csv"])],
    format: Annotated[Literal["csv", "jsonl"] | None, Query()] = None,
) -> ImportJobOut:
    """The upload is spooled to disk (never held in memory), its header checked, then imported
    in the background; poll `GET /v1/imports/{id}` for progress and rejects. Re-uploading the
    same file is harmless: unchanged rows are recognised by account id. The rows become
    records of the caller's tenant."""
    ctx = context(request, intake_by(principal))
    try:
        fmt = importer.detect_format(filename, format or _format_of(request))
    except importer.ImportFileError as exc:
        raise UnsupportedUpload(str(exc)) from None
    settings = request.app.state.runtime.settings
    job_id = uuid.uuid4()
    folder = Path(settings.import_dir)
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local mkdir, once
    path = folder / f"{job_id}.{fmt}"
    size = 0
    try:
        with path.open("wb") as spool:
            async for chunk in request.stream():
                size += len(chunk)
                spool.write(chunk)
        if size == 0:
            raise BadUpload("the upload is empty")
        with path.open("rb") as stream:
            try:
                importer.check_header(stream, fmt)
            except importer.ImportFileError as exc:
                raise BadUpload(str(exc)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    async with unit_of_work(request) as session:
        job = ImportJob(
            id=job_id,
            tenant=ctx.tenant,
            filename=filename,
            format=fmt,
            status="queued",
            bytes_total=size,
            bytes_done=0,
            rows_read=0,
            rows_created=0,
            rows_updated=0,
            rows_unchanged=0,
            rows_rejected=0,
            rejects=[],
            created_at=ctx.now,
        )
        session.add(job)
    task = asyncio.create_task(
        importer.run_job(
            request.app.state.runtime.sessions,
            job_id=job_id,
            tenant=ctx.tenant,
            path=path,
            fmt=fmt,
            policy=ctx.policy,
            clock=request.app.state.clock,
        ),
        name=f"import-{job_id}",
    )
    tasks: set[asyncio.Task[None]] = request.app.state.import_tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    response.headers["Location"] = f"/v1/imports/{job_id}"
    return importer.job_out(job)


class BadUpload(DomainError):
    status = 400
    problem_type = "https://qingshou.dev/problems/bad-upload"


class UnsupportedUpload(DomainError):
    status = 415
    problem_type = "https://qingshou.dev/problems/unsupported-upload"


def _format_of(request: Request) -> str | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return {
        "text/csv": "csv",
        "application/x-ndjson": "jsonl",
        "application/jsonl": "jsonl",
        "application/json-lines": "jsonl",
    }.get(content_type)


@router.get(
    "/imports/{job_id}",
    response_model=ImportJobOut,
    tags=["imports"],
    summary="An import job's progress, counts and first rejects",
    responses=problem_responses(404),
)
async def get_import(job_id: uuid.UUID, request: Request, principal: Reader) -> ImportJobOut:
    async with unit_of_work(request) as session:
        job = await importer.find_job(session, job_id=job_id, tenant=principal.tenant)
        return importer.job_out(job)


@router.get(
    "/imports/{job_id}/rejects",
    tags=["imports"],
    summary="Every rejected row of an import: row, field, reason (CSV)",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404)},
)
async def get_import_rejects(
    job_id: uuid.UUID, request: Request, principal: Reader
) -> FileResponse:
    async with unit_of_work(request) as session:
        job = await importer.find_job(session, job_id=job_id, tenant=principal.tenant)
    folder = Path(request.app.state.runtime.settings.import_dir)
    path = folder / f"{job_id}.rejects.csv"
    if not path.exists():
        raise NotFound(f"import job {job_id} has no rejects file yet ({job.status})")
    return FileResponse(path, media_type="text/csv", filename=f"{job.filename}.rejects.csv")
