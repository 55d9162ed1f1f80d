"""Cases use cases. The caller (API route, handler or job) owns the transaction.

Every change goes through `_record`: it appends a timeline entry holding the case as it stood
right after the change (so `as_of` is a lookup, not a guess) and stages the change's events in
the outbox, in the same transaction as the change itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import domain
from services.cases.domain import Closure, PromiseStatus, Stage
from services.cases.models import (
    Agency,
    Case,
    Collector,
    Debtor,
    Hold,
    IdempotencyRecord,
    Note,
    Payment,
    Plan,
    Promise,
    Queue,
    Team,
    TimelineEntry,
)
from services.cases.schemas import (
    AgencyIn,
    AgencyOut,
    AllocationOut,
    Assignment,
    CaseCreate,
    CaseOut,
    CasePage,
    CollectorIn,
    CollectorOut,
    ContactPoint,
    DailyRunOut,
    DebtorOut,
    HoldCreate,
    HoldOut,
    PaymentIn,
    PaymentOut,
    PlanIn,
    PlanOut,
    PreferencesIn,
    PromiseIn,
    PromiseOut,
    QueueCriteria,
    QueueIn,
    QueueOut,
    Reach,
    ReachChannel,
    TeamIn,
    TeamOut,
    Timeline,
    TimelineEntryOut,
)
from shared import crypto
from shared.bus import PermanentMessageError
from shared.contracts import (
    CaseAssigned,
    CaseClosed,
    CaseOpened,
    CaseScored,
    CaseUpdated,
    CollateralType,
    ContactOutcomeRecorded,
    DebtorPreferencesChanged,
    EventPayload,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    OutcomeResult,
    PaymentReceived,
    PlanCreated,
    PlanKind,
    PtpBroken,
    PtpCreated,
    PtpKept,
    ScoreOverridden,
    build_envelope,
    canonical_json,
)
from shared.contracts.topics import CASES_EVENTS
from shared.http import Conflict, DomainError, Invalid, NotFound
from shared.outbox import enqueue_event

PRODUCER = "cases"
SYSTEM = "system:cases"


class IdempotencyKeyReused(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/idempotency-key-reused"


class CaseClosedError(DomainError):
    status = 409
    problem_type = "https://qingshou.dev/problems/case-closed"


class NotApproved(DomainError):
    status = 403
    problem_type = "https://qingshou.dev/problems/approval-limit"


@dataclass(frozen=True)
class Policy:
    """The tenant's case rules (from settings)."""

    buckets: tuple[domain.Bucket, ...] = domain.DEFAULT_BUCKETS
    ptp_grace_days: int = 3
    ptp_max_days_ahead: int = 60
    role_limits: dict[str, domain.RoleLimits] | None = None
    #: How long after closure a case's financial records must be kept (an erasure keeps them,
    #: de-identified, until then; services/cases/privacy.py).
    financial_retention_days: int = 5 * 365

    @property
    def limits(self) -> dict[str, domain.RoleLimits]:
        return self.role_limits or domain.DEFAULT_ROLE_LIMITS


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, kw_only=True)
class Context:
    """Who and when, for one transaction."""

    now: datetime
    correlation_id: str
    #: Whose records: every query filters by it, a record of another tenant does not exist.
    tenant: str
    causation_id: str | None = None
    policy: Policy = DEFAULT_POLICY
    #: Set for a collector's own credential: only the cases assigned to that collector (or
    #: taken by them from a queue and still locked to them) exist for this caller.
    collector_id: uuid.UUID | None = None

    @property
    def today(self) -> date:
        return self.now.date()

    def of(self, tenant: str) -> Context:
        """The same moment, on behalf of `tenant` (the daily run works through every tenant)."""
        return replace(self, tenant=tenant, collector_id=None)


# --- reading --------------------------------------------------------------------------------


def case_out(
    case: Case, debtor: Debtor, *, today: date, policy: Policy = DEFAULT_POLICY
) -> CaseOut:
    """The API view of a case on `today` (DPD and bucket are computed, never stored input)."""
    dpd = 0 if case.status != "open" else domain.days_past_due(due_date=case.due_date, today=today)
    return CaseOut(
        id=case.id,
        account_id=case.account_id,
        status=case.status,
        stage=Stage(case.stage),
        closure=Closure(case.closure) if case.closure else None,
        closed_at=case.closed_at,
        debtor=DebtorOut(
            id=debtor.id,
            external_ref=debtor.external_ref,
            kind=debtor.kind,
            name=debtor.name,
            time_zone=debtor.time_zone,
            language=debtor.language,
            region=debtor.region,
            contact_points=debtor.contact_points,
            addresses=debtor.addresses,
            opted_out_channels=list(debtor.opted_out_channels),
            consents=list(debtor.consents),
            erased_at=debtor.erased_at,
        ),
        product=case.product,
        currency=case.currency,
        principal=case.principal,
        interest=case.interest,
        fees=case.fees,
        amount_outstanding=case.outstanding,
        paid_total=case.paid_total,
        due_date=case.due_date,
        installment_amount=case.installment_amount,
        days_past_due=dpd,
        dpd_bucket=domain.dpd_bucket(days=dpd, buckets=policy.buckets),
        industry_risk=case.industry_risk,
        industry_code=case.industry_code,
        collateral_type=CollateralType(case.collateral_type),
        collateral_value=case.collateral_value,
        small_business=case.small_business,
        portfolio=case.portfolio,
        tags=list(case.tags),
        risk_features=case.risk_features,
        risk_tier=case.risk_tier,
        priority=case.priority,
        treatment=case.treatment,
        scored_at=case.scored_at,
        assignment=Assignment(
            team_id=case.team_id,
            collector_id=case.collector_id,
            agency_id=case.agency_id,
            locked_by=case.locked_by,
            locked_until=case.locked_until,
        ),
        on_hold=case.active_holds > 0,
        broken_promises=case.broken_promises,
        last_right_party_contact_at=case.last_right_party_contact_at,
        opened_at=case.opened_at,
        updated_at=case.updated_at,
    )


def _visible(ctx: Context) -> list[sa.ColumnElement[bool]]:
    """The cases that exist for this caller: the tenant's, and for a collector only their own
    (assigned to them, or taken from a queue and still locked to them)."""
    where = [Case.tenant == ctx.tenant]
    if ctx.collector_id is not None:
        where.append(
            sa.or_(
                Case.collector_id == ctx.collector_id,
                sa.and_(Case.locked_by == ctx.collector_id, Case.locked_until >= ctx.now),
            )
        )
    return where


async def _load(
    session: AsyncSession, case_id: uuid.UUID, *, ctx: Context, for_update: bool = True
) -> tuple[Case, Debtor]:
    found = await _find(session, case_id, ctx=ctx, for_update=for_update)
    if found is None:
        raise NotFound(f"no case {case_id}")
    return found


async def _find(
    session: AsyncSession, case_id: uuid.UUID, *, ctx: Context, for_update: bool = True
) -> tuple[Case, Debtor] | None:
    query = (
        sa.select(Case, Debtor)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .where(Case.id == case_id, *_visible(ctx))
    )
    if for_update:
        # PostgreSQL: writers to one case queue here; SQLite's BEGIN IMMEDIATE already did.
        query = query.with_for_update(of=Case)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def _load_open(
    session: AsyncSession, case_id: uuid.UUID, *, ctx: Context
) -> tuple[Case, Debtor]:
    case, debtor = await _load(session, case_id, ctx=ctx)
    if case.status != "open":
        raise CaseClosedError(f"case {case_id} is closed ({case.closure}); nothing more can change")
    return case, debtor


async def reach(
    session: AsyncSession, *, case_id: uuid.UUID, channel: ReachChannel, ctx: Context
) -> Reach:
    """Where the case's debtor may be reached on `channel`: the phone numbers (call, SMS) or
    e-mail addresses not opted out of, consented ones first; none on a channel the debtor opted
    out of, for a case that is not open, or once the debtor's data was erased. Work numbers
    are left out when the debtor said not at work."""
    case, debtor = await _load(session, case_id, ctx=ctx, for_update=False)
    opted_out = set(debtor.opted_out_channels or ())
    if case.status != "open" or channel in opted_out or debtor.erased_at is not None:
        return Reach(case_id=case_id, channel=channel, contact_points=[])
    kind = "email" if channel == "email" else "phone"
    # Stored as validated at intake; not validated again, so a rule tightened since cannot
    # turn an old row into a 500 for the dialer.
    known = [ContactPoint.model_construct(**p) for p in debtor.contact_points or ()]
    points = [p for p in known if p.kind == kind and not p.opted_out]
    if kind == "phone" and debtor.phone and all(p.value != debtor.phone for p in known):
        points.append(ContactPoint.model_construct(kind="phone", value=debtor.phone, type="other"))
    if "workplace" in opted_out:
        points = [p for p in points if p.type != "work"]
    points.sort(key=lambda p: not p.consent)
    return Reach(case_id=case_id, channel=channel, contact_points=points)


async def get_case(
    session: AsyncSession, *, case_id: uuid.UUID, ctx: Context, as_of: datetime | None = None
) -> CaseOut:
    """The case now, or as it stood at `as_of` (the last change recorded by then)."""
    case, debtor = await _load(session, case_id, ctx=ctx, for_update=False)
    if as_of is None:
        return case_out(case, debtor, today=ctx.today, policy=ctx.policy)
    snapshot = await session.scalar(
        sa.select(TimelineEntry.snapshot)
        .where(
            TimelineEntry.tenant == ctx.tenant,
            TimelineEntry.case_id == case_id,
            TimelineEntry.recorded_at <= as_of,
        )
        .order_by(TimelineEntry.seq.desc())
        .limit(1)
    )
    if snapshot is None:
        raise NotFound(f"case {case_id} did not exist yet at {as_of.isoformat()}")
    past = CaseOut.model_validate(snapshot)
    # DPD as it was on that day, from the due date as it was then.
    dpd = (
        0
        if past.status != "open"
        else domain.days_past_due(due_date=past.due_date, today=as_of.date())
    )
    return past.model_copy(
        update={
            "days_past_due": dpd,
            "dpd_bucket": domain.dpd_bucket(days=dpd, buckets=ctx.policy.buckets),
        }
    )


def _encode_cursor(priority: float, opened_at: datetime, case_id: uuid.UUID) -> str:
    raw = json.dumps([priority, opened_at.isoformat(), str(case_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        priority, opened, case_id = json.loads(raw)
        return float(priority), datetime.fromisoformat(opened), uuid.UUID(case_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Invalid("cursor is not one this API handed out") from None


@dataclass(frozen=True)
class CaseFilter:
    """Search criteria of `GET /v1/cases`; None means any."""

    status: str | None = None
    buckets: Sequence[str] = ()
    stages: Sequence[str] = ()
    risk_tiers: Sequence[str] = ()
    team_id: uuid.UUID | None = None
    collector_id: uuid.UUID | None = None
    agency_id: uuid.UUID | None = None
    on_hold: bool | None = None
    tags: Sequence[str] = ()
    portfolios: Sequence[str] = ()
    min_balance: Decimal | None = None
    max_balance: Decimal | None = None
    account_id: str | None = None
    debtor_ref: str | None = None


def _conditions(flt: CaseFilter, *, today: date, policy: Policy) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if flt.status:
        where.append(Case.status == flt.status)
    if flt.buckets:
        ranges: list[sa.ColumnElement[bool]] = []
        for bucket in flt.buckets:
            try:
                earliest, latest = domain.due_date_range(
                    bucket=bucket, today=today, buckets=policy.buckets
                )
            except ValueError:
                known = ", ".join([domain.CURRENT, *(b[0] for b in policy.buckets)])
                raise Invalid(f"unknown bucket {bucket!r}; buckets are {known}") from None
            parts: list[sa.ColumnElement[bool]] = []
            if bucket == domain.CURRENT:
                parts.append(Case.due_date >= today)
            else:
                if earliest is not None:
                    parts.append(Case.due_date >= earliest)
                if latest is not None:
                    parts.append(Case.due_date <= latest)
            ranges.append(sa.and_(*parts))
        where.append(sa.or_(*ranges))
    if flt.stages:
        where.append(Case.stage.in_(list(flt.stages)))
    if flt.risk_tiers:
        where.append(Case.risk_tier.in_(list(flt.risk_tiers)))
    if flt.team_id:
        where.append(Case.team_id == flt.team_id)
    if flt.collector_id:
        where.append(Case.collector_id == flt.collector_id)
    if flt.agency_id:
        where.append(Case.agency_id == flt.agency_id)
    if flt.on_hold is not None:
        where.append(Case.active_holds > 0 if flt.on_hold else Case.active_holds == 0)
    for tag in flt.tags:
        # JSON arrays are stored compactly; match the quoted element (tags are [a-z0-9_.:-]).
        where.append(sa.cast(Case.tags, sa.String).like(f'%"{tag}"%'))
    if flt.portfolios:
        where.append(Case.portfolio.in_(list(flt.portfolios)))
    if flt.min_balance is not None:
        where.append(Case.outstanding >= flt.min_balance)
    if flt.max_balance is not None:
        where.append(Case.outstanding <= flt.max_balance)
    if flt.account_id:
        where.append(Case.account_id == flt.account_id)
    if flt.debtor_ref:
        where.append(Debtor.external_ref == flt.debtor_ref)
    return where


async def list_cases(
    session: AsyncSession, *, flt: CaseFilter, limit: int, cursor: str | None, ctx: Context
) -> CasePage:
    """Cases matching `flt`, highest priority first, with a keyset cursor (stable under inserts)."""
    today, policy = ctx.today, ctx.policy
    query = sa.select(Case, Debtor).join(Debtor, Debtor.id == Case.debtor_id)
    where = [*_visible(ctx), *_conditions(flt, today=today, policy=policy)]
    if cursor:
        priority, opened_at, case_id = _decode_cursor(cursor)
        where.append(
            sa.or_(
                Case.priority < priority,
                sa.and_(Case.priority == priority, Case.opened_at > opened_at),
                sa.and_(Case.priority == priority, Case.opened_at == opened_at, Case.id > case_id),
            )
        )
    rows = (
        await session.execute(
            query.where(*where)
            .order_by(Case.priority.desc(), Case.opened_at, Case.id)
            .limit(limit + 1)
        )
    ).all()
    items = [case_out(c, d, today=today, policy=policy) for c, d in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = _encode_cursor(last.priority, last.opened_at, last.id)
    return CasePage(items=items, next_cursor=next_cursor)


# --- recording changes ------------------------------------------------------------------------


async def _record(
    session: AsyncSession,
    *,
    case: Case,
    debtor: Debtor,
    ctx: Context,
    kind: str,
    actor: str,
    summary: str,
    data: dict[str, Any] | None = None,
    events: Sequence[EventPayload] = (),
) -> None:
    """Timeline entry (with the case as it now stands) and the change's events, one transaction.
    Both take the case's own tenant, whoever's context recorded the change."""
    case.updated_at = ctx.now
    await session.flush()
    snapshot = case_out(case, debtor, today=ctx.today, policy=ctx.policy).model_dump(mode="json")
    session.add(
        TimelineEntry(
            tenant=case.tenant,
            case_id=case.id,
            kind=kind,
            actor=actor,
            summary=summary[:500],
            data=data or {},
            snapshot=snapshot,
            recorded_at=ctx.now,
        )
    )
    for payload in events:
        await enqueue_event(
            session,
            topic=CASES_EVENTS,
            envelope=build_envelope(
                payload,
                key=str(case.id),
                producer=PRODUCER,
                correlation_id=ctx.correlation_id,
                causation_id=ctx.causation_id,
                tenant=case.tenant,
            ),
        )


def _case_updated(case: Case, ctx: Context, changed: list[str]) -> CaseUpdated:
    dpd = domain.days_past_due(due_date=case.due_date, today=ctx.today)
    return CaseUpdated(
        case_id=case.id,
        days_past_due=dpd if case.status == "open" else 0,
        dpd_bucket=case.dpd_bucket,
        stage=case.stage,
        amount_outstanding=case.outstanding,
        currency=case.currency,
        changed=changed,
        updated_at=ctx.now,
    )


def _roll(case: Case, ctx: Context) -> list[str]:
    """Bring stored bucket and stage in line with today's DPD; names what moved."""
    dpd = domain.days_past_due(due_date=case.due_date, today=ctx.today)
    bucket = domain.dpd_bucket(days=dpd, buckets=ctx.policy.buckets)
    stage = domain.stage_for(days=dpd, current=Stage(case.stage)).value
    moved = []
    if bucket != case.dpd_bucket:
        case.dpd_bucket = bucket
        moved.append("dpd_bucket")
    if stage != case.stage:
        case.stage = stage
        moved.append("stage")
    return moved


# --- opening cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenCaseResult:
    case: CaseOut
    replayed: bool


def request_fingerprint(command: CaseCreate) -> str:
    """Hash of the request body, to tell a retry from a different request under the same key."""
    return hashlib.sha256(canonical_json(command.model_dump(mode="json"))).hexdigest()


def debtor_row(command: CaseCreate, *, now: datetime, tenant: str) -> dict[str, Any]:
    """Every column of a new debtor (the first phone contact point doubles as `phone`)."""
    d = command.debtor
    phone = d.phone or next((p.value for p in d.contact_points if p.kind == "phone"), None)
    cipher = crypto.current()
    return {
        "id": uuid.uuid4(),
        "tenant": tenant,
        "external_ref": d.external_ref,
        "kind": d.kind.value,
        "name": d.name,
        "national_id": d.national_id,
        "national_id_index": (
            cipher.blind_index(d.national_id, kind="national_id") if d.national_id else None
        ),
        "phone": phone,
        "phone_index": cipher.blind_index(phone, kind="phone") if phone else None,
        "time_zone": d.time_zone,
        "language": d.language,
        "region": d.region,
        "contact_points": [p.model_dump(mode="json") for p in d.contact_points],
        "addresses": [a.model_dump(mode="json") for a in d.addresses],
        "opted_out_channels": sorted(set(d.opted_out_channels)),
        "consents": sorted(set(d.consents)),
        "preferences_changed_at": now if d.opted_out_channels or d.consents else None,
        "created_at": now,
        "erased_at": None,
    }


def case_row(command: CaseCreate, *, debtor_id: uuid.UUID, ctx: Context) -> dict[str, Any]:
    """Every column of a new case, with its bucket and stage for today. Plain values, so a bulk
    import can insert thousands without building an ORM object for each."""
    dpd = domain.days_past_due(due_date=command.due_date, today=ctx.today)
    return {
        "id": uuid.uuid4(),
        "tenant": ctx.tenant,
        "account_id": command.account_id,
        "debtor_id": debtor_id,
        "product": command.product,
        "currency": command.currency,
        "principal": command.principal,
        "interest": command.interest,
        "fees": command.fees,
        "outstanding": command.principal + command.interest + command.fees,
        "first_due_date": command.due_date,
        "due_date": command.due_date,
        "installment_amount": command.installment_amount,
        "paid_total": Decimal("0.00"),
        "industry_risk": command.industry_risk,
        "industry_code": command.industry_code,
        "collateral_type": command.collateral_type.value,
        "collateral_value": command.collateral_value,
        "small_business": command.small_business,
        "portfolio": command.portfolio,
        "tags": sorted(set(command.tags)),
        "risk_features": dict(command.risk_features),
        "status": "open",
        "stage": domain.stage_for(days=dpd).value,
        "dpd_bucket": domain.dpd_bucket(days=dpd, buckets=ctx.policy.buckets),
        "closure": None,
        "closed_at": None,
        "risk_tier": None,
        "priority": 0.0,
        "treatment": None,
        "scored_at": None,
        "team_id": None,
        "collector_id": None,
        "agency_id": None,
        "locked_by": None,
        "locked_until": None,
        "active_holds": 0,
        "last_right_party_contact_at": None,
        "broken_promises": 0,
        "import_hash": None,
        "opened_at": ctx.now,
        "updated_at": ctx.now,
    }


def new_debtor(command: CaseCreate, *, now: datetime, tenant: str) -> Debtor:
    """A debtor from the request."""
    return Debtor(**debtor_row(command, now=now, tenant=tenant))


def new_case(command: CaseCreate, *, debtor_id: uuid.UUID, ctx: Context) -> Case:
    """A case from the request."""
    return Case(**case_row(command, debtor_id=debtor_id, ctx=ctx))


def case_opened_event(case: Case, debtor: Debtor, ctx: Context) -> CaseOpened:
    return CaseOpened(
        case_id=case.id,
        account_id=case.account_id,
        debtor_id=debtor.id,
        debtor_time_zone=debtor.time_zone,
        product=case.product,
        currency=case.currency,
        principal=case.principal,
        interest=case.interest,
        fees=case.fees,
        amount_outstanding=case.outstanding,
        due_date=case.due_date,
        days_past_due=domain.days_past_due(due_date=case.due_date, today=ctx.today),
        industry_risk=case.industry_risk,
        opened_at=case.opened_at,
        collateral_type=CollateralType(case.collateral_type),
        small_business=case.small_business,
        risk_features=case.risk_features,
        opted_out_channels=list(debtor.opted_out_channels),
        consents=list(debtor.consents),
    )


def check_due_date(command: CaseCreate, *, today: date) -> None:
    if command.due_date > today:
        raise Invalid(f"due_date {command.due_date} is after today ({today})")


async def open_case(
    session: AsyncSession,
    *,
    command: CaseCreate,
    idempotency_key: str | None,
    ctx: Context,
) -> OpenCaseResult:
    """Open a case for a delinquent account and stage `case.opened`."""
    fingerprint = request_fingerprint(command)
    if idempotency_key is not None:
        previous = await session.scalar(
            sa.select(IdempotencyRecord).where(
                IdempotencyRecord.tenant == ctx.tenant, IdempotencyRecord.key == idempotency_key
            )
        )
        if previous is not None:
            if previous.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different request body"
                )
            return OpenCaseResult(CaseOut.model_validate(previous.response), replayed=True)
    check_due_date(command, today=ctx.today)
    # A second open case for the account is caught by the unique index (one round trip fewer
    # than asking first, and right under concurrency too); the caller turns it into a 409.

    debtor = await _find_or_create_debtor(session, command=command, ctx=ctx)
    case = new_case(command, debtor_id=debtor.id, ctx=ctx)
    session.add(case)
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="opened",
        actor=SYSTEM,
        summary=f"case opened for account {case.account_id}, {case.outstanding} {case.currency}",
        events=[case_opened_event(case, debtor, ctx)],
    )
    out = case_out(case, debtor, today=ctx.today, policy=ctx.policy)
    if idempotency_key is not None:
        session.add(
            IdempotencyRecord(
                tenant=ctx.tenant,
                key=idempotency_key,
                request_hash=fingerprint,
                status_code=201,
                response=out.model_dump(mode="json"),
                created_at=ctx.now,
            )
        )
    await session.flush()
    return OpenCaseResult(out, replayed=False)


async def open_case_of(session: AsyncSession, *, account_id: str, tenant: str) -> uuid.UUID | None:
    """The tenant's open case of an account, if any."""
    found: uuid.UUID | None = await session.scalar(
        sa.select(Case.id).where(
            Case.tenant == tenant, Case.account_id == account_id, Case.status == "open"
        )
    )
    return found


async def _find_or_create_debtor(
    session: AsyncSession, *, command: CaseCreate, ctx: Context
) -> Debtor:
    ref = command.debtor.external_ref
    if ref is not None:
        found = await session.scalar(
            sa.select(Debtor).where(Debtor.tenant == ctx.tenant, Debtor.external_ref == ref)
        )
        if found is not None:
            return found
    debtor = new_debtor(command, now=ctx.now, tenant=ctx.tenant)
    session.add(debtor)
    await session.flush()  # no ORM relationship orders the inserts, so the debtor goes first
    return debtor


# --- debtors ----------------------------------------------------------------------------------


async def find_debtor_ids(
    session: AsyncSession,
    *,
    tenant: str,
    national_id: str | None = None,
    phone: str | None = None,
) -> list[uuid.UUID]:
    """The tenant's debtors with this national id and/or phone, found by their blind indexes
    (the values themselves are encrypted and cannot be compared in SQL). The index is keyed per
    deployment, not per tenant, so the same person under two tenants matches in both: the
    tenant condition is what keeps them apart."""
    cipher = crypto.current()
    where = [Debtor.tenant == tenant]
    if national_id is not None:
        where.append(
            Debtor.national_id_index == cipher.blind_index(national_id, kind="national_id")
        )
    if phone is not None:
        where.append(Debtor.phone_index == cipher.blind_index(phone, kind="phone"))
    if len(where) == 1:
        raise ValueError("give a national id or a phone")
    found = await session.scalars(sa.select(Debtor.id).where(*where).order_by(Debtor.created_at))
    return list(found)


async def _load_debtor(
    session: AsyncSession, debtor_id: uuid.UUID, *, ctx: Context, for_update: bool = False
) -> Debtor:
    query = sa.select(Debtor).where(Debtor.id == debtor_id, Debtor.tenant == ctx.tenant)
    if ctx.collector_id is not None:
        # A collector knows a debtor only through one of their own cases.
        query = query.where(sa.exists().where(Case.debtor_id == Debtor.id, *_visible(ctx)))
    if for_update:
        query = query.with_for_update(of=Debtor)
    debtor = await session.scalar(query)
    if debtor is None:
        raise NotFound(f"no debtor {debtor_id}")
    return debtor


async def get_debtor(session: AsyncSession, *, debtor_id: uuid.UUID, ctx: Context) -> DebtorOut:
    return _debtor_out(await _load_debtor(session, debtor_id, ctx=ctx))


def _debtor_out(debtor: Debtor) -> DebtorOut:
    return DebtorOut(
        id=debtor.id,
        external_ref=debtor.external_ref,
        kind=debtor.kind,
        name=debtor.name,
        time_zone=debtor.time_zone,
        language=debtor.language,
        region=debtor.region,
        contact_points=debtor.contact_points,
        addresses=debtor.addresses,
        opted_out_channels=list(debtor.opted_out_channels),
        consents=list(debtor.consents),
        erased_at=debtor.erased_at,
    )


async def set_preferences(
    session: AsyncSession, *, debtor_id: uuid.UUID, command: PreferencesIn, ctx: Context
) -> DebtorOut:
    """Replace the debtor's channel opt-outs and consents; publishes
    `debtor.preferences_changed` (contact applies it to every debt of this person) and notes the
    change on the timeline of each open case."""
    debtor = await _load_debtor(session, debtor_id, ctx=ctx, for_update=True)
    debtor.opted_out_channels = sorted(set(command.opted_out_channels))
    debtor.consents = sorted(set(command.consents))
    debtor.preferences_changed_at = ctx.now
    summary = (
        f"opted out of {', '.join(debtor.opted_out_channels) or 'nothing'}; "
        f"consents {', '.join(debtor.consents) or 'none'}: {command.reason}"
    )
    cases = (
        await session.scalars(
            sa.select(Case).where(
                Case.tenant == debtor.tenant, Case.debtor_id == debtor_id, Case.status == "open"
            )
        )
    ).all()
    for case in cases:
        await _record(
            session,
            case=case,
            debtor=debtor,
            ctx=ctx,
            kind="preferences",
            actor=command.changed_by,
            summary=summary,
            data={
                "opted_out_channels": debtor.opted_out_channels,
                "consents": debtor.consents,
            },
        )
    await enqueue_event(
        session,
        topic=CASES_EVENTS,
        envelope=build_envelope(
            DebtorPreferencesChanged(
                debtor_id=debtor.id,
                opted_out_channels=debtor.opted_out_channels,
                consents=debtor.consents,
                changed_by=command.changed_by,
                reason=command.reason,
                changed_at=ctx.now,
            ),
            key=str(debtor.id),
            producer=PRODUCER,
            correlation_id=ctx.correlation_id,
            tenant=debtor.tenant,
        ),
    )
    return _debtor_out(debtor)


# --- stage, closure, notes --------------------------------------------------------------------


async def change_stage(
    session: AsyncSession, *, case_id: uuid.UUID, stage: Stage, reason: str, by: str, ctx: Context
) -> CaseOut:
    """Move a case to legal or restructuring (or back to the DPD-driven stages)."""
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    if case.stage == stage.value:
        return case_out(case, debtor, today=ctx.today, policy=ctx.policy)
    previous = case.stage
    case.stage = stage.value
    if stage not in domain.MANUAL_STAGES:
        _roll(case, ctx)  # back on the DPD track: the stage follows DPD again
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="stage_changed",
        actor=by,
        summary=f"stage {previous} → {case.stage}: {reason}",
        data={"from": previous, "to": case.stage, "reason": reason},
        events=[_case_updated(case, ctx, ["stage"])],
    )
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def close_case(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    closure: Closure,
    reason: str,
    by: str,
    ctx: Context,
) -> CaseOut:
    """Close a case (settled only when nothing is owed; other closures keep the balance)."""
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    if closure is Closure.SETTLED and case.outstanding > 0:
        settled_by_plan = await _settlement_fulfilled(session, case)
        if not settled_by_plan:
            raise Conflict(
                f"case {case_id} still owes {case.outstanding} {case.currency}; "
                "record the payment, or close it as written_off, sold, restructured or legal"
            )
    await _close(session, case=case, debtor=debtor, closure=closure, reason=reason, by=by, ctx=ctx)
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def _close(
    session: AsyncSession,
    *,
    case: Case,
    debtor: Debtor,
    closure: Closure,
    reason: str,
    by: str,
    ctx: Context,
) -> None:
    outstanding = case.outstanding
    case.status = "closed"
    case.stage = Stage.CLOSED.value
    case.closure = closure.value
    case.closed_at = ctx.now
    case.locked_by = None
    case.locked_until = None
    # Open promises and plans end with the case; they are neither kept nor broken.
    await session.execute(
        sa.update(Promise)
        .where(
            Promise.tenant == case.tenant,
            Promise.case_id == case.id,
            Promise.status == PromiseStatus.PENDING.value,
        )
        .values(status=PromiseStatus.CANCELLED.value, resolved_at=ctx.now)
    )
    await session.execute(
        sa.update(Plan)
        .where(Plan.tenant == case.tenant, Plan.case_id == case.id, Plan.status == "active")
        .values(status="completed" if closure is Closure.SETTLED else "cancelled")
    )
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="closed",
        actor=by,
        summary=f"closed as {closure.value}: {reason}",
        data={"closure": closure.value, "reason": reason, "amount_outstanding": str(outstanding)},
        events=[
            CaseClosed(
                case_id=case.id,
                account_id=case.account_id,
                closure=closure.value,
                amount_outstanding=outstanding,
                closed_by=by,
                closed_at=ctx.now,
            )
        ],
    )


async def add_note(
    session: AsyncSession, *, case_id: uuid.UUID, author: str, text: str, ctx: Context
) -> TimelineEntryOut:
    """A free-text note on the case timeline (closed cases still take notes)."""
    case, debtor = await _load(session, case_id, ctx=ctx)
    session.add(
        Note(tenant=case.tenant, case_id=case.id, author=author, text=text, created_at=ctx.now)
    )
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="note",
        actor=author,
        summary=text[:200],
        data={"text": text},
    )
    await session.flush()
    entry = await session.scalar(
        sa.select(TimelineEntry)
        .where(TimelineEntry.tenant == case.tenant, TimelineEntry.case_id == case.id)
        .order_by(TimelineEntry.seq.desc())
        .limit(1)
    )
    assert entry is not None
    return _entry_out(entry)


def _entry_out(entry: TimelineEntry) -> TimelineEntryOut:
    return TimelineEntryOut(
        seq=entry.seq,
        kind=entry.kind,
        actor=entry.actor,
        summary=entry.summary,
        data=entry.data,
        recorded_at=entry.recorded_at,
    )


async def timeline(
    session: AsyncSession, *, case_id: uuid.UUID, ctx: Context, as_of: datetime | None = None
) -> Timeline:
    """Every change to the case in the order it was recorded (up to `as_of`)."""
    if await session.scalar(sa.select(Case.id).where(Case.id == case_id, *_visible(ctx))) is None:
        raise NotFound(f"no case {case_id}")
    query = sa.select(TimelineEntry).where(
        TimelineEntry.tenant == ctx.tenant, TimelineEntry.case_id == case_id
    )
    if as_of is not None:
        query = query.where(TimelineEntry.recorded_at <= as_of)
    entries = (await session.scalars(query.order_by(TimelineEntry.seq))).all()
    return Timeline(case_id=case_id, entries=[_entry_out(e) for e in entries])


# --- holds --------------------------------------------------------------------------------------


def _hold_out(hold: Hold, now: datetime) -> HoldOut:
    active = hold.released_at is None and (hold.ends_at is None or hold.ends_at > now)
    return HoldOut(
        id=hold.id,
        case_id=hold.case_id,
        kind=HoldKind(hold.kind),
        reason=hold.reason,
        placed_by=hold.placed_by,
        starts_at=hold.starts_at,
        ends_at=hold.ends_at,
        released_at=hold.released_at,
        released_by=hold.released_by,
        active=active,
    )


async def place_hold(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    command: HoldCreate,
    ctx: Context,
    hold_id: uuid.UUID | None = None,
) -> HoldOut:
    """Stop contact on a case for a reason the rules name; publishes `case.hold_placed`.
    `hold_id` is given when it is derived from the event that asked for the hold."""
    starts_at = command.starts_at or ctx.now
    if starts_at > ctx.now + timedelta(minutes=5):
        raise Invalid("starts_at may be back-dated but not in the future")
    if command.ends_at is not None and command.ends_at <= max(starts_at, ctx.now):
        raise Invalid("ends_at must be after starts_at and in the future")
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    hold = Hold(
        id=hold_id or uuid.uuid4(),
        tenant=case.tenant,
        case_id=case.id,
        kind=command.kind.value,
        reason=command.reason,
        placed_by=command.placed_by,
        starts_at=starts_at,
        ends_at=command.ends_at,
        created_at=ctx.now,
    )
    session.add(hold)
    case.active_holds += 1
    case.locked_by = None  # nobody keeps working a case that may not be contacted
    case.locked_until = None
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="hold_placed",
        actor=command.placed_by,
        summary=f"{command.kind.value} hold: {command.reason}",
        data={
            "hold_id": str(hold.id),
            "kind": command.kind.value,
            "starts_at": starts_at.isoformat(),
            "ends_at": command.ends_at.isoformat() if command.ends_at else None,
        },
        events=[
            HoldPlaced(
                hold_id=hold.id,
                case_id=case.id,
                debtor_id=debtor.id,
                kind=command.kind,
                reason=command.reason,
                placed_by=command.placed_by,
                starts_at=starts_at,
                ends_at=command.ends_at,
            )
        ],
    )
    return _hold_out(hold, ctx.now)


async def release_hold(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    hold_id: uuid.UUID,
    released_by: str,
    reason: str,
    ctx: Context,
) -> HoldOut:
    """End a hold; publishes `case.hold_released`. Releasing twice is a 409."""
    case, debtor = await _load(session, case_id, ctx=ctx)
    hold = await session.scalar(
        sa.select(Hold)
        .where(Hold.id == hold_id, Hold.tenant == case.tenant, Hold.case_id == case.id)
        .with_for_update()
    )
    if hold is None:
        raise NotFound(f"case {case_id} has no hold {hold_id}")
    if hold.released_at is not None:
        raise Conflict(f"hold {hold_id} was already released at {hold.released_at.isoformat()}")
    await _release(
        session, case=case, debtor=debtor, hold=hold, by=released_by, reason=reason, ctx=ctx
    )
    return _hold_out(hold, ctx.now)


async def _release(
    session: AsyncSession,
    *,
    case: Case,
    debtor: Debtor,
    hold: Hold,
    by: str,
    reason: str,
    ctx: Context,
) -> None:
    hold.released_at = ctx.now
    hold.released_by = by
    case.active_holds = max(0, case.active_holds - 1)
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="hold_released",
        actor=by,
        summary=f"{hold.kind} hold released" + (f": {reason}" if reason else ""),
        data={"hold_id": str(hold.id), "kind": hold.kind},
        events=[
            HoldReleased(hold_id=hold.id, case_id=case.id, released_by=by, released_at=ctx.now)
        ],
    )


#: Holds placed on compliance's word get ids derived from the event that asked (uuid5 in this
#: namespace), so a redelivered event finds its hold already there.
COMPLIANCE_HOLDS = uuid.UUID("5b1f9c1e-3d0a-4f7e-9c55-1e2d3c4b5a69")


async def _refuse_other_tenant(
    session: AsyncSession, model: type[Case] | type[Debtor], record_id: uuid.UUID, *, ctx: Context
) -> None:
    """A consumed event naming another tenant's record is never applied: it is dead-lettered
    at once, since no retry can make it right. (A record unknown to every tenant is another
    matter: the caller skips it, as it always did.)"""
    owner = await session.scalar(sa.select(model.tenant).where(model.id == record_id))
    if owner is not None and owner != ctx.tenant:
        what = "case" if model is Case else "debtor"
        raise PermanentMessageError(
            f"an event of tenant {ctx.tenant!r} names {what} {record_id}, which belongs to "
            "another tenant; not applied"
        )


async def _event_case(
    session: AsyncSession, case_id: uuid.UUID, *, ctx: Context
) -> tuple[Case, Debtor] | None:
    """The case a consumed event is about, or None if this tenant has no such case."""
    found = await _find(session, case_id, ctx=ctx)
    if found is None:
        await _refuse_other_tenant(session, Case, case_id, ctx=ctx)
    return found


async def _compliance_cases(
    session: AsyncSession, *, case_id: uuid.UUID | None, debtor_id: uuid.UUID | None, ctx: Context
) -> list[uuid.UUID]:
    """The open cases a compliance event concerns: its case, else every open case of the
    debtor (a complaint about the person)."""
    if case_id is not None:
        await _refuse_other_tenant(session, Case, case_id, ctx=ctx)
    if debtor_id is not None:
        await _refuse_other_tenant(session, Debtor, debtor_id, ctx=ctx)
    if case_id is not None:
        return [case_id]
    if debtor_id is None:
        return []
    return list(
        (
            await session.scalars(
                sa.select(Case.id)
                .where(
                    Case.tenant == ctx.tenant, Case.debtor_id == debtor_id, Case.status == "open"
                )
                .order_by(Case.id)
            )
        ).all()
    )


async def hold_for_compliance(
    session: AsyncSession,
    *,
    event_id: str,
    case_id: uuid.UUID | None,
    debtor_id: uuid.UUID | None,
    kind: HoldKind,
    reason: str,
    ctx: Context,
) -> int:
    """Place the hold compliance asked for (an open complaint, a violation under review) on
    each open case it concerns, once per event; returns how many were placed. A case unknown
    here or already closed is skipped: there is nothing left to contact."""
    placed = 0
    targets = await _compliance_cases(session, case_id=case_id, debtor_id=debtor_id, ctx=ctx)
    for target in targets:
        hold_id = uuid.uuid5(COMPLIANCE_HOLDS, f"{event_id}:{target}")
        if await session.scalar(
            sa.select(Hold.id).where(Hold.id == hold_id, Hold.tenant == ctx.tenant)
        ):
            continue
        found = await _find(session, target, ctx=ctx)
        if found is None or found[0].status != "open":
            continue
        if kind is HoldKind.COMPLIANCE_REVIEW and await session.scalar(
            sa.select(Hold.id).where(
                Hold.tenant == ctx.tenant,
                Hold.case_id == target,
                Hold.kind == kind.value,
                Hold.released_at.is_(None),
            )
        ):
            continue  # one review hold at a time is enough
        await place_hold(
            session,
            case_id=target,
            command=HoldCreate(kind=kind, reason=reason[:2000], placed_by="compliance"),
            ctx=ctx,
            hold_id=hold_id,
        )
        placed += 1
    return placed


async def release_for_compliance(
    session: AsyncSession,
    *,
    case_id: uuid.UUID | None,
    debtor_id: uuid.UUID | None,
    kind: HoldKind,
    reason_prefix: str,
    ctx: Context,
) -> int:
    """Release the live holds compliance placed for one complaint (matched by kind and the
    reason it wrote); returns how many."""
    released = 0
    targets = await _compliance_cases(session, case_id=case_id, debtor_id=debtor_id, ctx=ctx)
    for target in targets:
        found = await _find(session, target, ctx=ctx)
        if found is None:
            continue
        case, debtor = found
        holds = (
            await session.scalars(
                sa.select(Hold).where(
                    Hold.tenant == ctx.tenant,
                    Hold.case_id == target,
                    Hold.kind == kind.value,
                    Hold.placed_by == "compliance",
                    Hold.released_at.is_(None),
                    Hold.reason.startswith(reason_prefix, autoescape=True),
                )
            )
        ).all()
        for hold in holds:
            await _release(
                session,
                case=case,
                debtor=debtor,
                hold=hold,
                by="compliance",
                reason="complaint closed",
                ctx=ctx,
            )
            released += 1
    return released


async def list_holds(session: AsyncSession, *, case_id: uuid.UUID, ctx: Context) -> list[HoldOut]:
    await _load(session, case_id, ctx=ctx, for_update=False)
    holds = (
        await session.scalars(
            sa.select(Hold)
            .where(Hold.tenant == ctx.tenant, Hold.case_id == case_id)
            .order_by(Hold.created_at)
        )
    ).all()
    return [_hold_out(h, ctx.now) for h in holds]


# --- payments ---------------------------------------------------------------------------------


def _payment_fingerprint(command: PaymentIn, case_id: uuid.UUID) -> str:
    body = {**command.model_dump(mode="json"), "case_id": str(case_id)}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _payment_out(payment: Payment, case: Case, ctx: Context) -> PaymentOut:
    return PaymentOut(
        id=payment.id,
        case_id=payment.case_id,
        external_payment_id=payment.external_payment_id,
        amount=payment.amount,
        currency=payment.currency,
        paid_on=payment.paid_on,
        to_fees=payment.to_fees,
        to_interest=payment.to_interest,
        to_principal=payment.to_principal,
        unapplied=payment.unapplied,
        amount_outstanding_after=case.outstanding,
        days_past_due_after=(
            domain.days_past_due(due_date=case.due_date, today=ctx.today)
            if case.status == "open"
            else 0
        ),
        case_status_after=case.status,
    )


@dataclass(frozen=True)
class PaymentResult:
    payment: PaymentOut
    replayed: bool


async def record_payment(
    session: AsyncSession, *, case_id: uuid.UUID, command: PaymentIn, ctx: Context
) -> PaymentResult:
    """Apply a payment (fees, interest, principal), update DPD, close the case when settled.

    Idempotent by `external_payment_id`: the same payment again replays the first result; the
    same id with other details is a 409 (two different payments must not share an id)."""
    fingerprint = _payment_fingerprint(command, case_id)
    existing = await session.scalar(
        sa.select(Payment).where(
            Payment.tenant == ctx.tenant,
            Payment.external_payment_id == command.external_payment_id,
        )
    )
    if existing is not None:
        if existing.request_hash != fingerprint:
            raise Conflict(
                f"payment {command.external_payment_id} was already recorded with other details"
            )
        case, _ = await _load(session, existing.case_id, ctx=ctx, for_update=False)
        return PaymentResult(_payment_out(existing, case, ctx), replayed=True)
    if command.paid_on > ctx.today:
        raise Invalid(f"paid_on {command.paid_on} is in the future")
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    if command.currency != case.currency:
        raise Invalid(
            f"payment currency {command.currency} differs from the case currency {case.currency}"
        )
    balance = domain.Balance(principal=case.principal, interest=case.interest, fees=case.fees)
    allocation, after = domain.allocate_payment(amount=command.amount, balance=balance)
    case.principal, case.interest, case.fees = after.principal, after.interest, after.fees
    case.outstanding = after.outstanding
    case.paid_total += allocation.applied
    old_due = case.due_date
    case.due_date = domain.arrears_due_date(
        first_due_date=case.first_due_date,
        installment_amount=case.installment_amount,
        credited=case.paid_total,
    )
    changed = ["amount_outstanding"] + (["days_past_due"] if case.due_date != old_due else [])
    changed += _roll(case, ctx)
    payment = Payment(
        id=uuid.uuid4(),
        tenant=case.tenant,
        case_id=case.id,
        external_payment_id=command.external_payment_id,
        amount=command.amount,
        currency=command.currency,
        paid_on=command.paid_on,
        channel=command.channel,
        to_fees=allocation.fees,
        to_interest=allocation.interest,
        to_principal=allocation.principal,
        unapplied=allocation.unapplied,
        request_hash=fingerprint,
        received_at=ctx.now,
    )
    session.add(payment)
    dpd_after = domain.days_past_due(due_date=case.due_date, today=ctx.today)
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="payment",
        actor=command.channel or "payment",
        summary=f"payment {command.amount} {command.currency} ({command.external_payment_id})",
        data={
            "payment_id": str(payment.id),
            "external_payment_id": command.external_payment_id,
            "amount": str(command.amount),
            "to_fees": str(allocation.fees),
            "to_interest": str(allocation.interest),
            "to_principal": str(allocation.principal),
            "unapplied": str(allocation.unapplied),
        },
        events=[
            PaymentReceived(
                case_id=case.id,
                payment_id=payment.id,
                external_payment_id=command.external_payment_id,
                amount=command.amount,
                currency=command.currency,
                received_at=ctx.now,
                amount_outstanding_after=case.outstanding,
                days_past_due_after=dpd_after,
            ),
            _case_updated(case, ctx, changed),
        ],
    )
    # Promises are settled as soon as money covers them, not only by the nightly run.
    await _evaluate_promises(session, case=case, debtor=debtor, ctx=ctx)
    if case.status == "open":
        if case.outstanding == 0:
            await _close(
                session,
                case=case,
                debtor=debtor,
                closure=Closure.SETTLED,
                reason="paid in full",
                by=SYSTEM,
                ctx=ctx,
            )
        elif await _settlement_fulfilled(session, case):
            await _close(
                session,
                case=case,
                debtor=debtor,
                closure=Closure.SETTLED,
                reason=f"settlement paid; {case.outstanding} {case.currency} waived",
                by=SYSTEM,
                ctx=ctx,
            )
    return PaymentResult(_payment_out(payment, case, ctx), replayed=False)


async def _settlement_fulfilled(session: AsyncSession, case: Case) -> bool:
    """An active settlement whose every instalment has been kept."""
    plan_ids = (
        await session.scalars(
            sa.select(Plan.id).where(
                Plan.tenant == case.tenant,
                Plan.case_id == case.id,
                Plan.kind == PlanKind.SETTLEMENT.value,
                Plan.status.in_(["active", "completed"]),
            )
        )
    ).all()
    for plan_id in plan_ids:
        statuses = (
            await session.scalars(
                sa.select(Promise.status).where(
                    Promise.tenant == case.tenant, Promise.plan_id == plan_id
                )
            )
        ).all()
        if statuses and all(s == PromiseStatus.KEPT.value for s in statuses):
            return True
    return False


async def list_payments(
    session: AsyncSession, *, case_id: uuid.UUID, ctx: Context
) -> list[PaymentOut]:
    case, _ = await _load(session, case_id, ctx=ctx, for_update=False)
    payments = (
        await session.scalars(
            sa.select(Payment)
            .where(Payment.tenant == case.tenant, Payment.case_id == case_id)
            .order_by(Payment.received_at)
        )
    ).all()
    return [_payment_out(p, case, ctx) for p in payments]


# --- promises and plans -------------------------------------------------------------------------


def _promise_out(p: Promise) -> PromiseOut:
    return PromiseOut(
        id=p.id,
        case_id=p.case_id,
        plan_id=p.plan_id,
        installment_number=p.installment_number,
        amount=p.amount,
        promised_date=p.promised_date,
        channel=p.channel,
        taken_by=p.taken_by,
        status=PromiseStatus(p.status),
        resolved_at=p.resolved_at,
        created_at=p.created_at,
    )


def _check_promise_date(promised: date, ctx: Context) -> None:
    if promised < ctx.today:
        raise Invalid(f"promised_date {promised} is in the past")
    horizon = ctx.today + timedelta(days=ctx.policy.ptp_max_days_ahead)
    if promised > horizon:
        raise Invalid(
            f"promised_date {promised} is more than {ctx.policy.ptp_max_days_ahead} days ahead; "
            "use a payment plan"
        )


async def take_promise(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    command: PromiseIn,
    ctx: Context,
    outcome_id: uuid.UUID | None = None,
) -> PromiseOut:
    """Record a promise to pay; publishes `ptp.created`."""
    _check_promise_date(command.promised_date, ctx)
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    if command.amount > case.outstanding:
        raise Invalid(
            f"promised {command.amount} exceeds the balance of {case.outstanding} {case.currency}"
        )
    promise = Promise(
        id=uuid.uuid4(),
        tenant=case.tenant,
        case_id=case.id,
        amount=command.amount,
        promised_date=command.promised_date,
        channel=command.channel,
        taken_by=command.taken_by,
        outcome_id=outcome_id,
        status=PromiseStatus.PENDING.value,
        created_at=ctx.now,
    )
    session.add(promise)
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="ptp_created",
        actor=command.taken_by,
        summary=f"promise to pay {command.amount} {case.currency} by {command.promised_date}",
        data={"ptp_id": str(promise.id), "amount": str(command.amount)},
        events=[
            PtpCreated(
                case_id=case.id,
                ptp_id=promise.id,
                promised_amount=command.amount,
                promised_date=command.promised_date,
                channel=command.channel,
                taken_by=command.taken_by,
                created_at=ctx.now,
                outcome_id=outcome_id,
            )
        ],
    )
    return _promise_out(promise)


async def list_promises(
    session: AsyncSession, *, case_id: uuid.UUID, ctx: Context
) -> list[PromiseOut]:
    await _load(session, case_id, ctx=ctx, for_update=False)
    rows = (
        await session.scalars(
            sa.select(Promise)
            .where(Promise.tenant == ctx.tenant, Promise.case_id == case_id)
            .order_by(Promise.promised_date, Promise.installment_number)
        )
    ).all()
    return [_promise_out(p) for p in rows]


async def create_plan(
    session: AsyncSession, *, case_id: uuid.UUID, command: PlanIn, ctx: Context
) -> PlanOut:
    """An instalment plan or settlement offer within the approver's limits; each instalment is
    tracked like a promise. Publishes `plan.created` and one `ptp.created` per instalment."""
    if command.first_due_date < ctx.today:
        raise Invalid(f"first_due_date {command.first_due_date} is in the past")
    if command.first_due_date > ctx.today + timedelta(days=ctx.policy.ptp_max_days_ahead):
        raise Invalid("first_due_date is too far ahead")
    try:
        shape = domain.parse_plan_shape(command.shape)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    active = await session.scalar(
        sa.select(Plan.id).where(
            Plan.tenant == case.tenant, Plan.case_id == case.id, Plan.status == "active"
        )
    )
    if active is not None:
        raise Conflict(f"case {case_id} already has active plan {active}; cancel it first")
    balance = domain.Balance(principal=case.principal, interest=case.interest, fees=case.fees)
    if command.kind is PlanKind.SETTLEMENT:
        try:
            offer = domain.settlement_offer(
                balance=balance,
                interest_waiver=command.interest_waiver,
                fees_waiver=command.fees_waiver,
                principal_waiver=command.principal_waiver,
            )
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    else:
        if command.interest_waiver or command.fees_waiver or command.principal_waiver:
            raise Invalid("waivers belong to settlement offers; instalment plans cover the balance")
        offer = domain.Settlement(balance.outstanding, Decimal(0), Decimal(0), Decimal(0))
    installments = sum(shape)
    problem = domain.approval_problem(
        role=command.approver_role,
        outstanding=balance.outstanding,
        waived=offer.waived,
        waived_principal=offer.waived_principal,
        installments=installments,
        limits=ctx.policy.limits,
    )
    if problem is not None:
        raise NotApproved(problem)
    try:
        schedule = domain.build_schedule(
            total=offer.amount,
            first_due=command.first_due_date,
            shape=shape,
            step_weights=command.step_weights,
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    plan = Plan(
        id=uuid.uuid4(),
        tenant=case.tenant,
        case_id=case.id,
        kind=command.kind.value,
        shape=command.shape,
        total=offer.amount,
        waived_interest=offer.waived_interest,
        waived_fees=offer.waived_fees,
        waived_principal=offer.waived_principal,
        status="active",
        approved_by=command.approved_by,
        approver_role=command.approver_role,
        created_at=ctx.now,
    )
    session.add(plan)
    await session.flush()
    promises = [
        Promise(
            id=uuid.uuid4(),
            tenant=case.tenant,
            case_id=case.id,
            plan_id=plan.id,
            installment_number=i,
            amount=item.amount,
            promised_date=item.due_date,
            channel="plan",
            taken_by=command.approved_by,
            status=PromiseStatus.PENDING.value,
            created_at=ctx.now,
        )
        for i, item in enumerate(schedule, start=1)
    ]
    session.add_all(promises)
    # Superseded single promises end here: the plan is the promise now.
    await session.execute(
        sa.update(Promise)
        .where(
            Promise.tenant == case.tenant,
            Promise.case_id == case.id,
            Promise.plan_id.is_(None),
            Promise.status == PromiseStatus.PENDING.value,
        )
        .values(status=PromiseStatus.CANCELLED.value, resolved_at=ctx.now)
    )
    events: list[EventPayload] = [
        PlanCreated(
            case_id=case.id,
            plan_id=plan.id,
            kind=command.kind,
            total=offer.amount,
            currency=case.currency,
            installments=installments,
            first_due_date=command.first_due_date,
            waived=offer.waived,
            approved_by=command.approved_by,
            approver_role=command.approver_role,
            created_at=ctx.now,
        )
    ]
    events += [
        PtpCreated(
            case_id=case.id,
            ptp_id=p.id,
            promised_amount=p.amount,
            promised_date=p.promised_date,
            channel="plan",
            taken_by=command.approved_by,
            created_at=ctx.now,
            plan_id=plan.id,
            installment_number=p.installment_number,
        )
        for p in promises
    ]
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="plan_created",
        actor=command.approved_by,
        summary=(
            f"{command.kind.value} plan {command.shape}: {offer.amount} {case.currency}"
            + (f", {offer.waived} waived" if offer.waived else "")
        ),
        data={"plan_id": str(plan.id), "total": str(offer.amount), "waived": str(offer.waived)},
        events=events,
    )
    return plan_out(plan, promises)


def plan_out(plan: Plan, installments: Sequence[Promise]) -> PlanOut:
    """A plan as the API shows it, with its instalments."""
    return PlanOut(
        id=plan.id,
        case_id=plan.case_id,
        kind=PlanKind(plan.kind),
        shape=plan.shape,
        total=plan.total,
        waived=plan.waived_interest + plan.waived_fees + plan.waived_principal,
        status=plan.status,
        approved_by=plan.approved_by,
        approver_role=plan.approver_role,
        installments=[_promise_out(p) for p in installments],
        created_at=plan.created_at,
    )


async def _evaluate_promises(
    session: AsyncSession, *, case: Case, debtor: Debtor, ctx: Context
) -> tuple[int, int]:
    """Resolve this case's pending promises against its payments; publishes kept/broken."""
    pending = (
        await session.scalars(
            sa.select(Promise).where(
                Promise.tenant == case.tenant,
                Promise.case_id == case.id,
                Promise.status == PromiseStatus.PENDING.value,
            )
        )
    ).all()
    if not pending:
        return 0, 0
    paid = await session.scalars(
        sa.select(Payment).where(Payment.tenant == case.tenant, Payment.case_id == case.id)
    )
    payments = [(p.paid_on, p.amount) for p in paid.all()]
    groups: dict[uuid.UUID | None, list[Promise]] = {}
    for promise in pending:
        groups.setdefault(promise.plan_id, []).append(promise)
    kept = broken = 0
    for plan_id, members in groups.items():
        if plan_id is None:
            # Single promises: each counts the money paid since it was taken.
            for promise in members:
                since = promise.created_at.date()
                status = domain.evaluate_schedule(
                    installments=[domain.Installment(promise.promised_date, promise.amount)],
                    payments=[(d, a) for d, a in payments if d >= since],
                    today=ctx.today,
                    grace_days=ctx.policy.ptp_grace_days,
                )[0]
                k, b = await _resolve(session, case, debtor, promise, status, ctx)
                kept, broken = kept + k, broken + b
            continue
        # A plan: instalments are cumulative over every payment since the plan started.
        every = (
            await session.scalars(
                sa.select(Promise)
                .where(Promise.tenant == case.tenant, Promise.plan_id == plan_id)
                .order_by(Promise.installment_number)
            )
        ).all()
        start = every[0].created_at.date()
        statuses = domain.evaluate_schedule(
            installments=[domain.Installment(p.promised_date, p.amount) for p in every],
            payments=[(d, a) for d, a in payments if d >= start],
            today=ctx.today,
            grace_days=ctx.policy.ptp_grace_days,
        )
        for promise, status in zip(every, statuses, strict=True):
            if promise.status == PromiseStatus.PENDING.value:
                k, b = await _resolve(session, case, debtor, promise, status, ctx)
                kept, broken = kept + k, broken + b
        if any(s is PromiseStatus.BROKEN for s in statuses):
            await session.execute(
                sa.update(Plan)
                .where(Plan.tenant == case.tenant, Plan.id == plan_id, Plan.status == "active")
                .values(status="broken")
            )
        elif all(s is PromiseStatus.KEPT for s in statuses):
            await session.execute(
                sa.update(Plan)
                .where(
                    Plan.tenant == case.tenant,
                    Plan.id == plan_id,
                    Plan.status == "active",
                    Plan.kind != PlanKind.SETTLEMENT.value,
                )
                .values(status="completed")
            )
    return kept, broken


async def _resolve(
    session: AsyncSession,
    case: Case,
    debtor: Debtor,
    promise: Promise,
    status: PromiseStatus,
    ctx: Context,
) -> tuple[int, int]:
    if status is PromiseStatus.PENDING:
        return 0, 0
    promise.status = status.value
    promise.resolved_at = ctx.now
    if status is PromiseStatus.KEPT:
        event: EventPayload = PtpKept(
            case_id=case.id,
            ptp_id=promise.id,
            promised_amount=promise.amount,
            promised_date=promise.promised_date,
            kept_at=ctx.now,
            plan_id=promise.plan_id,
            installment_number=promise.installment_number,
        )
    else:
        case.broken_promises += 1
        paid = sum(
            (
                p.amount
                for p in (
                    await session.scalars(
                        sa.select(Payment).where(
                            Payment.tenant == case.tenant,
                            Payment.case_id == case.id,
                            Payment.paid_on >= promise.created_at.date(),
                            Payment.paid_on
                            <= promise.promised_date + timedelta(days=ctx.policy.ptp_grace_days),
                        )
                    )
                ).all()
            ),
            Decimal("0.00"),
        )
        event = PtpBroken(
            case_id=case.id,
            ptp_id=promise.id,
            promised_amount=promise.amount,
            promised_date=promise.promised_date,
            paid_amount=paid,
            broken_at=ctx.now,
            broken_promises_total=case.broken_promises,
            plan_id=promise.plan_id,
            installment_number=promise.installment_number,
        )
    label = f"instalment {promise.installment_number}" if promise.plan_id else "promise"
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind=f"ptp_{status.value}",
        actor=SYSTEM,
        summary=f"{label} of {promise.amount} due {promise.promised_date} {status.value}",
        data={
            "ptp_id": str(promise.id),
            "plan_id": str(promise.plan_id) if promise.plan_id else None,
        },
        events=[event],
    )
    return (1, 0) if status is PromiseStatus.KEPT else (0, 1)


# --- consumed events ----------------------------------------------------------------------------


async def record_score(session: AsyncSession, *, event: CaseScored, ctx: Context) -> None:
    """Keep the latest tier, priority and treatment (an older score arriving late is ignored)."""
    found = await _event_case(session, event.case_id, ctx=ctx)
    if found is None:
        return  # a case from another system of record, or one deleted under retention
    case, debtor = found
    if event.challenger or (case.scored_at is not None and case.scored_at > event.scored_at):
        return
    case.risk_tier = event.risk_tier.value
    case.priority = event.priority
    case.treatment = event.treatment
    case.scored_at = event.scored_at
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="scored",
        actor=f"scoring:{event.model_id}@{event.model_version}",
        summary=f"tier {event.risk_tier.value}, priority {event.priority:.1f}"
        + (f", treatment {event.treatment}" if event.treatment else ""),
        data={"score_id": str(event.score_id), "reasons": event.reason_codes},
    )


async def record_override(session: AsyncSession, *, event: ScoreOverridden, ctx: Context) -> None:
    """A person overrode the tier or priority; the case follows the override."""
    found = await _event_case(session, event.case_id, ctx=ctx)
    if found is None:
        return
    case, debtor = found
    if event.risk_tier is not None:
        case.risk_tier = event.risk_tier.value
    if event.priority is not None:
        case.priority = event.priority
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="score_overridden",
        actor=event.overridden_by,
        summary=f"score overridden: {event.reason}",
        data={"override_id": str(event.override_id)},
    )


RIGHT_PARTY = frozenset(
    {
        OutcomeResult.RIGHT_PARTY_CONTACT,
        OutcomeResult.PROMISE_TO_PAY,
        OutcomeResult.REFUSED,
        OutcomeResult.DISPUTE_RAISED,
        OutcomeResult.CALLBACK_REQUESTED,
        OutcomeResult.AGITATED,
    }
)


async def record_outcome(
    session: AsyncSession, *, event: ContactOutcomeRecorded, ctx: Context
) -> None:
    """Right-party contact is noted; a promise taken on a call becomes a PTP (once per outcome);
    a dispute raised on a call places a dispute hold."""
    if event.result not in RIGHT_PARTY:
        # No answer, busy, wrong number, third party: nothing for the record here, but an
        # outcome about another tenant's case still says something is wrong upstream.
        await _refuse_other_tenant(session, Case, event.case_id, ctx=ctx)
        return
    found = await _event_case(session, event.case_id, ctx=ctx)
    if found is None or found[0].status != "open":
        return
    case, debtor = found
    by = f"{event.channel}:{event.agency or 'in-house'}"
    if (
        case.last_right_party_contact_at is None
        or case.last_right_party_contact_at < event.occurred_at
    ):
        case.last_right_party_contact_at = event.occurred_at
        await _record(
            session,
            case=case,
            debtor=debtor,
            ctx=ctx,
            kind="right_party_contact",
            actor=by,
            summary=f"{event.result.value} on {event.channel}",
            data={"outcome_id": str(event.outcome_id)},
        )
    if (
        event.result is OutcomeResult.PROMISE_TO_PAY
        and event.promised_amount is not None
        and event.promised_date is not None
    ):
        taken = await session.scalar(
            sa.select(Promise.id).where(
                Promise.tenant == case.tenant, Promise.outcome_id == event.outcome_id
            )
        )
        if taken is not None:
            return
        amount = min(event.promised_amount, case.outstanding)
        if amount <= 0 or event.promised_date < ctx.today:
            return  # nothing promised that could still be kept; the outcome itself is on record
        promised_date = min(
            event.promised_date, ctx.today + timedelta(days=ctx.policy.ptp_max_days_ahead)
        )
        await take_promise(
            session,
            case_id=case.id,
            command=PromiseIn(
                amount=amount, promised_date=promised_date, channel="call", taken_by=by
            ),
            ctx=ctx,
            outcome_id=event.outcome_id,
        )
    if event.result is OutcomeResult.DISPUTE_RAISED:
        already = await session.scalar(
            sa.select(Hold.id).where(
                Hold.tenant == case.tenant,
                Hold.case_id == case.id,
                Hold.kind == HoldKind.DISPUTE.value,
                Hold.released_at.is_(None),
            )
        )
        if already is None:
            await place_hold(
                session,
                case_id=case.id,
                command=HoldCreate(
                    kind=HoldKind.DISPUTE,
                    reason=f"dispute raised on {event.channel} (outcome {event.outcome_id})",
                    placed_by=by,
                    starts_at=min(event.occurred_at, ctx.now),
                ),
                ctx=ctx,
            )


# --- the daily run ------------------------------------------------------------------------------


async def daily_run(
    session: AsyncSession, *, ctx: Context, every_tenant: bool = False, limit: int = 5000
) -> DailyRunOut:
    """Promises kept/broken, holds past their end released, DPD buckets and stages rolled:
    `ctx.tenant`'s records, or with `every_tenant` (the service's own job) every tenant's,
    each record changed on behalf of its own tenant (timeline, events).

    Works in slices of `limit` cases so one transaction stays short; callers loop until a run
    reports nothing left to do."""

    def scope(model: type[Case] | type[Hold] | type[Promise]) -> list[sa.ColumnElement[bool]]:
        return [] if every_tenant else [model.tenant == ctx.tenant]

    kept = broken = expired = rolled = 0
    # Promises whose deadline (date + grace) has passed, or that may be kept already.
    due_cases = (
        await session.execute(
            sa.select(Promise.tenant, Promise.case_id)
            .where(
                *scope(Promise),
                Promise.status == PromiseStatus.PENDING.value,
                Promise.promised_date < ctx.today - timedelta(days=ctx.policy.ptp_grace_days),
            )
            .distinct()
            .limit(limit)
        )
    ).all()
    for tenant, case_id in due_cases:
        own = ctx.of(tenant)
        case, debtor = await _load(session, case_id, ctx=own)
        k, b = await _evaluate_promises(session, case=case, debtor=debtor, ctx=own)
        kept, broken = kept + k, broken + b
    expired_holds = (
        await session.scalars(
            sa.select(Hold)
            .where(
                *scope(Hold),
                Hold.released_at.is_(None),
                Hold.ends_at.is_not(None),
                Hold.ends_at <= ctx.now,
            )
            .limit(limit)
        )
    ).all()
    for hold in expired_holds:
        own = ctx.of(hold.tenant)
        case, debtor = await _load(session, hold.case_id, ctx=own)
        await _release(
            session,
            case=case,
            debtor=debtor,
            hold=hold,
            by=SYSTEM,
            reason="hold period ended",
            ctx=own,
        )
        expired += 1
    # Bucket roll: only cases whose stored bucket disagrees with today's DPD are touched.
    for bucket_name, low, high in [(domain.CURRENT, 0, 0), *ctx.policy.buckets]:
        earliest = None if high is None else ctx.today - timedelta(days=high)
        latest = ctx.today - timedelta(days=low)
        in_range = [Case.due_date <= latest] + ([Case.due_date >= earliest] if earliest else [])
        if bucket_name == domain.CURRENT:
            in_range = [Case.due_date >= ctx.today]
        stale = (
            await session.execute(
                sa.select(Case.tenant, Case.id)
                .where(
                    *scope(Case), Case.status == "open", Case.dpd_bucket != bucket_name, *in_range
                )
                .limit(limit - rolled)
            )
        ).all()
        for tenant, case_id in stale:
            own = ctx.of(tenant)
            case, debtor = await _load(session, case_id, ctx=own)
            moved = _roll(case, own)
            if moved:
                await _record(
                    session,
                    case=case,
                    debtor=debtor,
                    ctx=own,
                    kind="dpd_roll",
                    actor=SYSTEM,
                    summary=f"now {case.dpd_bucket} ({case.stage})",
                    events=[_case_updated(case, own, moved)],
                )
                rolled += 1
        if rolled >= limit:
            break
    return DailyRunOut(
        promises_kept=kept, promises_broken=broken, holds_expired=expired, cases_rolled=rolled
    )


# --- teams, collectors, agencies, queues ----------------------------------------------------------


_Owned = TypeVar("_Owned", Team, Collector, Agency, Queue)


async def _get(
    session: AsyncSession, model: type[_Owned], record_id: uuid.UUID, *, tenant: str
) -> _Owned | None:
    """A team, collector, agency or queue of the tenant (another tenant's is not there)."""
    found: _Owned | None = await session.scalar(
        sa.select(model).where(model.id == record_id, model.tenant == tenant)
    )
    return found


async def _name_taken(
    session: AsyncSession, model: type[_Owned], name: str, *, tenant: str
) -> bool:
    taken = await session.scalar(
        sa.select(model.id).where(model.tenant == tenant, model.name == name)
    )
    return taken is not None


async def create_team(session: AsyncSession, *, command: TeamIn, tenant: str) -> TeamOut:
    if await _name_taken(session, Team, command.name, tenant=tenant):
        raise Conflict(f"a team named {command.name!r} exists")
    team = Team(id=uuid.uuid4(), tenant=tenant, name=command.name, region=command.region)
    session.add(team)
    await session.flush()
    return TeamOut(id=team.id, name=team.name, region=team.region)


async def list_teams(session: AsyncSession, *, tenant: str) -> list[TeamOut]:
    teams = (
        await session.scalars(sa.select(Team).where(Team.tenant == tenant).order_by(Team.name))
    ).all()
    return [TeamOut(id=t.id, name=t.name, region=t.region) for t in teams]


async def _assigned_counts(session: AsyncSession, *, tenant: str) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        sa.select(Case.collector_id, sa.func.count())
        .where(Case.tenant == tenant, Case.status == "open", Case.collector_id.is_not(None))
        .group_by(Case.collector_id)
    )
    return {row[0]: int(row[1]) for row in rows.all() if row[0] is not None}


def _collector_out(c: Collector, assigned: int) -> CollectorOut:
    return CollectorOut(
        id=c.id,
        name=c.name,
        team_id=c.team_id,
        skills=list(c.skills),
        languages=list(c.languages),
        regions=list(c.regions),
        capacity=c.capacity,
        active=c.active,
        assigned=assigned,
    )


async def create_collector(
    session: AsyncSession, *, command: CollectorIn, tenant: str
) -> CollectorOut:
    if await _get(session, Team, command.team_id, tenant=tenant) is None:
        raise Invalid(f"no team {command.team_id}")
    collector = Collector(
        id=uuid.uuid4(),
        tenant=tenant,
        name=command.name,
        team_id=command.team_id,
        skills=sorted(set(command.skills)),
        languages=sorted(set(command.languages)),
        regions=sorted(set(command.regions)),
        capacity=command.capacity,
        active=command.active,
    )
    session.add(collector)
    await session.flush()
    return _collector_out(collector, 0)


async def list_collectors(
    session: AsyncSession, *, team_id: uuid.UUID | None, tenant: str
) -> list[CollectorOut]:
    query = sa.select(Collector).where(Collector.tenant == tenant).order_by(Collector.name)
    if team_id is not None:
        query = query.where(Collector.team_id == team_id)
    counts = await _assigned_counts(session, tenant=tenant)
    return [_collector_out(c, counts.get(c.id, 0)) for c in (await session.scalars(query)).all()]


async def create_agency(session: AsyncSession, *, command: AgencyIn, tenant: str) -> AgencyOut:
    if await _name_taken(session, Agency, command.name, tenant=tenant):
        raise Conflict(f"an agency named {command.name!r} exists")
    agency = Agency(
        id=uuid.uuid4(),
        tenant=tenant,
        name=command.name,
        commission_rate=command.commission_rate,
        active=command.active,
    )
    session.add(agency)
    await session.flush()
    return AgencyOut(
        id=agency.id, name=agency.name, commission_rate=agency.commission_rate, active=agency.active
    )


async def list_agencies(session: AsyncSession, *, tenant: str) -> list[AgencyOut]:
    rows = (
        await session.scalars(
            sa.select(Agency).where(Agency.tenant == tenant).order_by(Agency.name)
        )
    ).all()
    return [
        AgencyOut(id=a.id, name=a.name, commission_rate=a.commission_rate, active=a.active)
        for a in rows
    ]


async def create_queue(
    session: AsyncSession, *, command: QueueIn, policy: Policy, tenant: str
) -> QueueOut:
    if await _name_taken(session, Queue, command.name, tenant=tenant):
        raise Conflict(f"a queue named {command.name!r} exists")
    if (
        command.team_id is not None
        and await _get(session, Team, command.team_id, tenant=tenant) is None
    ):
        raise Invalid(f"no team {command.team_id}")
    known = {domain.CURRENT, *(b[0] for b in policy.buckets)}
    unknown = [b for b in command.criteria.buckets if b not in known]
    if unknown:
        raise Invalid(f"unknown buckets {unknown}; buckets are {sorted(known)}")
    queue = Queue(
        id=uuid.uuid4(),
        tenant=tenant,
        name=command.name,
        team_id=command.team_id,
        criteria=command.criteria.model_dump(mode="json"),
    )
    session.add(queue)
    await session.flush()
    return QueueOut(id=queue.id, name=queue.name, team_id=queue.team_id, criteria=command.criteria)


async def list_queues(session: AsyncSession, *, tenant: str) -> list[QueueOut]:
    rows = (
        await session.scalars(sa.select(Queue).where(Queue.tenant == tenant).order_by(Queue.name))
    ).all()
    return [
        QueueOut(
            id=q.id,
            name=q.name,
            team_id=q.team_id,
            criteria=QueueCriteria.model_validate(q.criteria),
        )
        for q in rows
    ]


async def next_case(
    session: AsyncSession,
    *,
    queue_id: uuid.UUID,
    collector_id: uuid.UUID,
    lock_minutes: int,
    ctx: Context,
) -> CaseOut | None:
    """The queue's highest-priority case this collector may work, locked to them.

    Skips cases on hold, placed with an agency, assigned to someone else, or locked by someone
    else. The lock is a conditional UPDATE (compare-and-set), so two collectors asking at the
    same moment can never both win the same case, on SQLite or PostgreSQL."""
    queue = await _get(session, Queue, queue_id, tenant=ctx.tenant)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    collector = await _get(session, Collector, collector_id, tenant=ctx.tenant)
    if collector is None or not collector.active:
        raise Invalid(f"no active collector {collector_id}")
    if queue.team_id is not None and collector.team_id != queue.team_id:
        raise Invalid(f"collector {collector_id} is not in the queue's team")
    criteria = QueueCriteria.model_validate(queue.criteria)
    flt = CaseFilter(
        status="open",
        buckets=criteria.buckets,
        stages=[s.value for s in criteria.stages],
        risk_tiers=criteria.risk_tiers,
        on_hold=False,
        tags=criteria.tags,
        portfolios=criteria.portfolios,
        min_balance=criteria.min_balance,
        max_balance=criteria.max_balance,
    )
    where = [Case.tenant == ctx.tenant, *_conditions(flt, today=ctx.today, policy=ctx.policy)]
    where += [
        Case.agency_id.is_(None),
        sa.or_(Case.collector_id.is_(None), Case.collector_id == collector_id),
        # Cases the caller already holds are not handed out again: `next` means another one.
        sa.or_(Case.locked_until.is_(None), Case.locked_until < ctx.now),
    ]
    if queue.team_id is not None:
        where.append(sa.or_(Case.team_id.is_(None), Case.team_id == queue.team_id))
    until = ctx.now + timedelta(minutes=lock_minutes)
    for _attempt in range(5):
        candidates = (
            await session.scalars(
                sa.select(Case.id)
                .join(Debtor, Debtor.id == Case.debtor_id)
                .where(*where)
                .order_by(Case.priority.desc(), Case.due_date, Case.id)
                .limit(20)
            )
        ).all()
        if not candidates:
            return None
        for case_id in candidates:
            won = await session.execute(
                sa.update(Case)
                .where(
                    Case.id == case_id,
                    Case.tenant == ctx.tenant,
                    Case.status == "open",
                    Case.active_holds == 0,
                    sa.or_(Case.locked_until.is_(None), Case.locked_until < ctx.now),
                )
                .values(locked_by=collector_id, locked_until=until)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                case, debtor = await _load(session, case_id, ctx=ctx)
                await session.refresh(case)
                await _record(
                    session,
                    case=case,
                    debtor=debtor,
                    ctx=ctx,
                    kind="worked",
                    actor=f"collector:{collector_id}",
                    summary=f"taken from queue {queue.name} until {until.isoformat()}",
                    data={"queue_id": str(queue_id), "collector_id": str(collector_id)},
                )
                return case_out(case, debtor, today=ctx.today, policy=ctx.policy)
    return None


async def release_lock(
    session: AsyncSession, *, case_id: uuid.UUID, collector_id: uuid.UUID, ctx: Context
) -> CaseOut:
    case, debtor = await _load(session, case_id, ctx=ctx)
    if case.locked_by != collector_id or case.locked_until is None or case.locked_until < ctx.now:
        raise Conflict(f"case {case_id} is not locked by collector {collector_id}")
    case.locked_by = None
    case.locked_until = None
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="released",
        actor=f"collector:{collector_id}",
        summary="work lock released",
    )
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def _assign(
    session: AsyncSession,
    *,
    case: Case,
    debtor: Debtor,
    collector: Collector | None,
    agency: Agency | None,
    by: str,
    reason: str,
    ctx: Context,
) -> None:
    case.collector_id = collector.id if collector else None
    case.team_id = collector.team_id if collector else None
    case.agency_id = agency.id if agency else None
    case.locked_by = None
    case.locked_until = None
    who = (
        f"collector {collector.name}"
        if collector
        else f"agency {agency.name}"
        if agency
        else "nobody"
    )
    await _record(
        session,
        case=case,
        debtor=debtor,
        ctx=ctx,
        kind="assigned",
        actor=by,
        summary=f"assigned to {who} ({reason})",
        data={
            "collector_id": str(case.collector_id) if case.collector_id else None,
            "agency_id": str(case.agency_id) if case.agency_id else None,
            "reason": reason,
        },
        events=[
            CaseAssigned(
                case_id=case.id,
                team_id=case.team_id,
                collector_id=case.collector_id,
                agency_id=case.agency_id,
                assigned_by=by,
                reason=reason,
                assigned_at=ctx.now,
            )
        ],
    )


async def assign_case(
    session: AsyncSession, *, case_id: uuid.UUID, collector_id: uuid.UUID, by: str, ctx: Context
) -> CaseOut:
    """Hand a case to a named collector (manual assignment)."""
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    collector = await _get(session, Collector, collector_id, tenant=case.tenant)
    if collector is None or not collector.active:
        raise Invalid(f"no active collector {collector_id}")
    if case.agency_id is not None:
        raise Conflict(f"case {case_id} is placed with an agency; recall it first")
    await _assign(
        session,
        case=case,
        debtor=debtor,
        collector=collector,
        agency=None,
        by=by,
        reason="manual",
        ctx=ctx,
    )
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def place_with_agency(
    session: AsyncSession, *, case_id: uuid.UUID, agency_id: uuid.UUID, by: str, ctx: Context
) -> CaseOut:
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    agency = await _get(session, Agency, agency_id, tenant=case.tenant)
    if agency is None or not agency.active:
        raise Invalid(f"no active agency {agency_id}")
    if case.agency_id is not None:
        raise Conflict(f"case {case_id} is already placed with agency {case.agency_id}")
    await _assign(
        session,
        case=case,
        debtor=debtor,
        collector=None,
        agency=agency,
        by=by,
        reason="placement",
        ctx=ctx,
    )
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def recall_from_agency(
    session: AsyncSession, *, case_id: uuid.UUID, by: str, reason: str, ctx: Context
) -> CaseOut:
    case, debtor = await _load_open(session, case_id, ctx=ctx)
    if case.agency_id is None:
        raise Conflict(f"case {case_id} is not placed with an agency")
    await _assign(
        session,
        case=case,
        debtor=debtor,
        collector=None,
        agency=None,
        by=by,
        reason=f"recall: {reason}",
        ctx=ctx,
    )
    return case_out(case, debtor, today=ctx.today, policy=ctx.policy)


async def allocate(
    session: AsyncSession, *, team_id: uuid.UUID | None, limit: int, by: str, ctx: Context
) -> AllocationOut:
    """Assign unassigned open cases, highest priority first, to the least-loaded collector with
    the skill (treatment or stage), the debtor's language and region, and room left."""
    query = sa.select(Collector).where(Collector.tenant == ctx.tenant, Collector.active.is_(True))
    if team_id is not None:
        query = query.where(Collector.team_id == team_id)
    collectors = {c.id: c for c in (await session.scalars(query)).all()}
    counts = await _assigned_counts(session, tenant=ctx.tenant)
    loads = {
        cid: domain.CollectorLoad(
            collector_id=str(cid),
            skills=frozenset(c.skills),
            languages=frozenset(c.languages),
            regions=frozenset(c.regions),
            capacity=c.capacity,
            assigned=counts.get(cid, 0),
        )
        for cid, c in collectors.items()
    }
    rows = (
        await session.execute(
            sa.select(Case, Debtor)
            .join(Debtor, Debtor.id == Case.debtor_id)
            .where(
                *_visible(ctx),
                Case.status == "open",
                Case.collector_id.is_(None),
                Case.agency_id.is_(None),
                Case.stage.not_in([Stage.LEGAL.value]),
            )
            .order_by(Case.priority.desc(), Case.due_date, Case.id)
            .limit(limit)
        )
    ).all()
    assigned = left = 0
    for case, debtor in rows:
        choice = domain.choose_collector(
            candidates=list(loads.values()),
            needs_skill=domain.skill_for(stage=Stage(case.stage), treatment=case.treatment),
            language=debtor.language,
            region=debtor.region,
        )
        if choice is None:
            left += 1
            continue
        collector = collectors[uuid.UUID(choice.collector_id)]
        loads[collector.id] = domain.CollectorLoad(
            **{**choice.__dict__, "assigned": choice.assigned + 1}
        )
        await _assign(
            session,
            case=case,
            debtor=debtor,
            collector=collector,
            agency=None,
            by=by,
            reason="allocation",
            ctx=ctx,
        )
        assigned += 1
    return AllocationOut(assigned=assigned, left_unassigned=left)


def end_of_day(day: date) -> datetime:
    """The last instant of `day` in UTC (an `as_of` date means "by the end of that day")."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(
        microseconds=1
    )
