"""Cases use cases. The caller (API route or handler) owns the transaction."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import domain
from services.cases.models import Case, Debtor, IdempotencyRecord
from services.cases.schemas import CaseCreate, CaseOut, DebtorOut
from shared.contracts import CaseOpened, CollateralType, build_envelope, canonical_json
from shared.contracts.topics import CASES_EVENTS
from shared.http import Conflict, DomainError, NotFound
from shared.outbox import enqueue_event

PRODUCER = "cases"


class IdempotencyKeyReused(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/idempotency-key-reused"


class DueDateInFuture(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/validation"


@dataclass(frozen=True)
class OpenCaseResult:
    case: CaseOut
    replayed: bool


def request_fingerprint(command: CaseCreate) -> str:
    """Hash of the request body, to tell a retry from a different request under the same key."""
    return hashlib.sha256(canonical_json(command.model_dump(mode="json"))).hexdigest()


async def open_case(
    session: AsyncSession,
    *,
    command: CaseCreate,
    idempotency_key: str | None,
    correlation_id: str,
    now: datetime,
) -> OpenCaseResult:
    """Open a case for a delinquent account and stage `case.opened`."""
    fingerprint = request_fingerprint(command)
    if idempotency_key is not None:
        previous = await session.get(IdempotencyRecord, idempotency_key)
        if previous is not None:
            if previous.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used with a different request body"
                )
            return OpenCaseResult(CaseOut.model_validate(previous.response), replayed=True)
    today = now.date()
    if command.due_date > today:
        raise DueDateInFuture(f"due_date {command.due_date} is after today ({today})")
    existing = await session.scalar(
        sa.select(Case.id).where(Case.account_id == command.account_id, Case.status == "open")
    )
    if existing is not None:
        raise Conflict(f"account {command.account_id} already has open case {existing}")

    debtor = await _find_or_create_debtor(session, command=command, now=now)
    case = Case(
        id=uuid.uuid4(),
        account_id=command.account_id,
        debtor_id=debtor.id,
        product=command.product,
        currency=command.currency,
        principal=command.principal,
        interest=command.interest,
        fees=command.fees,
        due_date=command.due_date,
        industry_risk=command.industry_risk,
        collateral_type=command.collateral_type.value,
        small_business=command.small_business,
        risk_features=dict(command.risk_features),
        status="open",
        opened_at=now,
    )
    session.add(case)
    await session.flush()
    out = _case_out(case, debtor, today=today)
    await enqueue_event(
        session,
        topic=CASES_EVENTS,
        envelope=build_envelope(
            CaseOpened(
                case_id=case.id,
                account_id=case.account_id,
                debtor_id=debtor.id,
                debtor_time_zone=debtor.time_zone,
                product=case.product,
                currency=case.currency,
                principal=case.principal,
                interest=case.interest,
                fees=case.fees,
                amount_outstanding=out.amount_outstanding,
                due_date=case.due_date,
                days_past_due=out.days_past_due,
                industry_risk=case.industry_risk,
                opened_at=now,
                collateral_type=CollateralType(case.collateral_type),
                small_business=case.small_business,
                risk_features=case.risk_features,
            ),
            key=str(case.id),
            producer=PRODUCER,
            correlation_id=correlation_id,
        ),
    )
    if idempotency_key is not None:
        session.add(
            IdempotencyRecord(
                key=idempotency_key,
                request_hash=fingerprint,
                status_code=201,
                response=out.model_dump(mode="json"),
                created_at=now,
            )
        )
    await session.flush()
    return OpenCaseResult(out, replayed=False)


async def _find_or_create_debtor(
    session: AsyncSession, *, command: CaseCreate, now: datetime
) -> Debtor:
    ref = command.debtor.external_ref
    if ref is not None:
        found = await session.scalar(sa.select(Debtor).where(Debtor.external_ref == ref))
        if found is not None:
            return found
    debtor = Debtor(
        id=uuid.uuid4(),
        external_ref=ref,
        name=command.debtor.name,
        phone=command.debtor.phone,
        time_zone=command.debtor.time_zone,
        created_at=now,
    )
    session.add(debtor)
    await session.flush()  # no ORM relationship orders the inserts, so the debtor goes first
    return debtor


async def get_case(session: AsyncSession, *, case_id: uuid.UUID, today: date) -> CaseOut:
    """The case and its debtor; NotFound if there is no such case."""
    row = (
        await session.execute(
            sa.select(Case, Debtor)
            .join(Debtor, Debtor.id == Case.debtor_id)
            .where(Case.id == case_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return _case_out(row[0], row[1], today=today)


def _case_out(case: Case, debtor: Debtor, *, today: date) -> CaseOut:
    balance = domain.Balance(principal=case.principal, interest=case.interest, fees=case.fees)
    dpd = domain.days_past_due(due_date=case.due_date, today=today)
    fields: dict[str, Any] = {
        "id": case.id,
        "account_id": case.account_id,
        "status": case.status,
        "debtor": DebtorOut(
            id=debtor.id,
            external_ref=debtor.external_ref,
            name=debtor.name,
            time_zone=debtor.time_zone,
        ),
        "product": case.product,
        "currency": case.currency,
        "principal": case.principal,
        "interest": case.interest,
        "fees": case.fees,
        "amount_outstanding": balance.outstanding,
        "due_date": case.due_date,
        "days_past_due": dpd,
        "dpd_bucket": domain.dpd_bucket(days=dpd),
        "industry_risk": case.industry_risk,
        "collateral_type": case.collateral_type,
        "small_business": case.small_business,
        "risk_features": case.risk_features,
        "opened_at": case.opened_at,
    }
    return CaseOut(**fields)
