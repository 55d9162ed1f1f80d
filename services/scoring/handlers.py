"""Scoring Kafka handlers: decode the contract, call the service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import service
from shared.bus import Handler, Received
from shared.contracts import CaseOpened, CaseUpdated, PaymentReceived, PtpBroken, utc_now
from shared.contracts.topics import CASES_EVENTS

TOPICS: tuple[str, ...] = (CASES_EVENTS,)


def make_handlers(ctx: service.ScoringContext) -> dict[str, Handler]:
    """Handlers bound to this process's scoring context (model cache, cut-offs, strategy)."""

    async def on_case_opened(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseOpened)
        await service.record_case_opened(
            session,
            event=message.payload,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    async def on_case_updated(session: AsyncSession, message: Received) -> None:
        event = message.payload
        assert isinstance(event, CaseUpdated)
        await service.record_case_change(
            session,
            case_id=event.case_id,
            days_past_due=event.days_past_due,
            amount_outstanding=event.amount_outstanding,
            broken_promises=None,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    async def on_payment_received(session: AsyncSession, message: Received) -> None:
        event = message.payload
        assert isinstance(event, PaymentReceived)
        await service.record_case_change(
            session,
            case_id=event.case_id,
            days_past_due=event.days_past_due_after,
            amount_outstanding=event.amount_outstanding_after,
            broken_promises=None,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    async def on_ptp_broken(session: AsyncSession, message: Received) -> None:
        event = message.payload
        assert isinstance(event, PtpBroken)
        await service.record_case_change(
            session,
            case_id=event.case_id,
            days_past_due=None,
            amount_outstanding=None,
            broken_promises=event.broken_promises_total,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    return {
        CaseOpened.event_type: on_case_opened,
        CaseUpdated.event_type: on_case_updated,
        PaymentReceived.event_type: on_payment_received,
        PtpBroken.event_type: on_ptp_broken,
    }
