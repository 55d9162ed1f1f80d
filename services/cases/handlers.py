"""Cases Kafka handlers: scores and contact outcomes come back to the system of record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import service
from shared.bus import Handler, Received
from shared.contracts import (
    CaseScored,
    ComplaintOpened,
    ComplaintStatusChanged,
    ContactOutcomeRecorded,
    HoldKind,
    ScoreOverridden,
    ViolationDetected,
    utc_now,
)
from shared.contracts.topics import COMPLIANCE_EVENTS, CONTACT_EVENTS, SCORING_EVENTS

TOPICS: tuple[str, ...] = (SCORING_EVENTS, CONTACT_EVENTS, COMPLIANCE_EVENTS)


def make_handlers(
    policy: service.Policy, clock: Callable[[], datetime] = utc_now
) -> dict[str, Handler]:
    """Handlers that apply the case policy, each to the records of the event's tenant: an
    event naming another tenant's case or debtor is dead-lettered (PermanentMessageError)."""

    def ctx(message: Received) -> service.Context:
        return service.Context(
            now=clock(),
            correlation_id=message.envelope.correlation_id,
            tenant=message.envelope.tenant,
            causation_id=str(message.envelope.event_id),
            policy=policy,
        )

    async def on_scored(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseScored)
        await service.record_score(session, event=message.payload, ctx=ctx(message))

    async def on_override(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ScoreOverridden)
        await service.record_override(session, event=message.payload, ctx=ctx(message))

    async def on_outcome(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ContactOutcomeRecorded)
        await service.record_outcome(session, event=message.payload, ctx=ctx(message))

    async def on_complaint(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ComplaintOpened)
        event = message.payload
        await service.hold_for_compliance(
            session,
            event_id=str(message.envelope.event_id),
            case_id=event.case_id,
            debtor_id=event.debtor_id,
            kind=HoldKind.COMPLAINT,
            reason=f"complaint {event.complaint_id}: {event.category.value}",
            ctx=ctx(message),
        )

    async def on_complaint_status(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ComplaintStatusChanged)
        event = message.payload
        if event.open and event.previous_status in ("resolved", "rejected"):
            await service.hold_for_compliance(  # reopened: contact stops again
                session,
                event_id=str(message.envelope.event_id),
                case_id=event.case_id,
                debtor_id=event.debtor_id,
                kind=HoldKind.COMPLAINT,
                reason=f"complaint {event.complaint_id}: reopened",
                ctx=ctx(message),
            )
        elif not event.open:
            await service.release_for_compliance(
                session,
                case_id=event.case_id,
                debtor_id=event.debtor_id,
                kind=HoldKind.COMPLAINT,
                reason_prefix=f"complaint {event.complaint_id}:",
                ctx=ctx(message),
            )

    async def on_violation(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ViolationDetected)
        event = message.payload
        if event.hold_requested:
            await service.hold_for_compliance(
                session,
                event_id=str(message.envelope.event_id),
                case_id=event.case_id,
                debtor_id=event.debtor_id,
                kind=HoldKind.COMPLIANCE_REVIEW,
                reason=f"violation {event.rule_id} ({event.severity.value}): {event.reason}",
                ctx=ctx(message),
            )

    return {
        ComplaintOpened.event_type: on_complaint,
        ComplaintStatusChanged.event_type: on_complaint_status,
        ViolationDetected.event_type: on_violation,
        CaseScored.event_type: on_scored,
        ScoreOverridden.event_type: on_override,
        ContactOutcomeRecorded.event_type: on_outcome,
    }


HANDLERS: dict[str, Handler] = make_handlers(service.DEFAULT_POLICY)
