"""Contact use cases: learn about cases, plan lawful attempts. The caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.contact import domain
from services.contact.models import ContactAttempt, ContactCase
from services.contact.schemas import AttemptOut, CaseAttempts
from shared.contracts import CaseOpened, CaseScored, ContactPlanned, Envelope, build_envelope
from shared.contracts.topics import CONTACT_EVENTS
from shared.http import NotFound
from shared.outbox import enqueue_event

PRODUCER = "contact"


async def _contact_case(session: AsyncSession, *, case_id: uuid.UUID, now: datetime) -> ContactCase:
    found = await session.get(ContactCase, case_id, with_for_update=True)
    if found is None:
        found = ContactCase(case_id=case_id, updated_at=now)
        session.add(found)
    return found


async def record_case_opened(
    session: AsyncSession, *, event: CaseOpened, envelope: Envelope, now: datetime
) -> ContactAttempt | None:
    """Remember the debtor's zone and DPD; plan the first attempt if the score is already in."""
    case = await _contact_case(session, case_id=event.case_id, now=now)
    case.debtor_id = event.debtor_id
    case.time_zone = event.debtor_time_zone
    if case.days_past_due is None:
        case.days_past_due = event.days_past_due
    case.updated_at = now
    return await _plan_first_attempt(session, case=case, envelope=envelope, now=now)


async def record_case_scored(
    session: AsyncSession, *, event: CaseScored, envelope: Envelope, now: datetime
) -> ContactAttempt | None:
    """Keep the latest score; plan the first attempt if the case itself is already known."""
    case = await _contact_case(session, case_id=event.case_id, now=now)
    case.priority = event.priority
    case.risk_tier = event.risk_tier.value
    case.days_past_due = event.days_past_due
    case.scored_event_id = str(envelope.event_id)
    case.updated_at = now
    return await _plan_first_attempt(session, case=case, envelope=envelope, now=now)


async def _plan_first_attempt(
    session: AsyncSession, *, case: ContactCase, envelope: Envelope, now: datetime
) -> ContactAttempt | None:
    if (
        case.time_zone is None
        or case.debtor_id is None
        or case.priority is None
        or case.days_past_due is None
    ):
        return None  # the other half (case or score) has not arrived yet
    already = await session.scalar(
        sa.select(ContactAttempt.id).where(ContactAttempt.case_id == case.case_id).limit(1)
    )
    if already is not None:
        return None
    zone = ZoneInfo(case.time_zone)
    window = domain.CN_WINDOW
    first = domain.first_contact_for(days_past_due=case.days_past_due)
    slot = domain.next_allowed_slot(earliest=now, zone=zone, window=window)
    attempt = ContactAttempt(
        id=uuid.uuid4(),
        case_id=case.case_id,
        debtor_id=case.debtor_id,
        attempt_no=1,
        channel=first.channel.value,
        template=first.template,
        stage=first.stage,
        status="planned",
        planned_at=slot,
        local_planned_at=slot.astimezone(zone).isoformat(),
        time_zone=case.time_zone,
        window_rule_id=window.rule_id,
        priority=case.priority,
        created_at=now,
    )
    session.add(attempt)
    await enqueue_event(
        session,
        topic=CONTACT_EVENTS,
        envelope=build_envelope(
            ContactPlanned(
                attempt_id=attempt.id,
                case_id=attempt.case_id,
                debtor_id=attempt.debtor_id,
                channel=attempt.channel,
                template=attempt.template,
                stage=attempt.stage,
                planned_at=slot,
                local_planned_at=attempt.local_planned_at,
                time_zone=attempt.time_zone,
                window_rule_id=attempt.window_rule_id,
                priority=attempt.priority,
            ),
            key=str(attempt.case_id),
            producer=PRODUCER,
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.event_id),
        ),
    )
    return attempt


async def case_attempts(session: AsyncSession, *, case_id: uuid.UUID) -> CaseAttempts:
    """Every attempt planned for a case; NotFound if contact has never heard of it."""
    known = await session.get(ContactCase, case_id)
    if known is None:
        raise NotFound(f"contact has no case {case_id}")
    rows = (
        await session.scalars(
            sa.select(ContactAttempt)
            .where(ContactAttempt.case_id == case_id)
            .order_by(ContactAttempt.attempt_no)
        )
    ).all()
    return CaseAttempts(case_id=case_id, attempts=[AttemptOut.model_validate(r) for r in rows])


async def get_attempt(session: AsyncSession, *, attempt_id: uuid.UUID) -> AttemptOut:
    """One attempt; NotFound if there is none."""
    found = await session.get(ContactAttempt, attempt_id)
    if found is None:
        raise NotFound(f"no contact attempt {attempt_id}")
    return AttemptOut.model_validate(found)
