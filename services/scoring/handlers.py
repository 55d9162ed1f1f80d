"""Scoring Kafka handlers: decode the contract, call the service."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import service
from shared.bus import Handler, Received
from shared.contracts import (
    CaseOpened,
    CaseUpdated,
    DebtorErased,
    PaymentReceived,
    PtpBroken,
    utc_now,
)
from shared.contracts.topics import CASES_EVENTS

TOPICS: tuple[str, ...] = (CASES_EVENTS,)


def make_handlers(ctx: service.ScoringContext) -> dict[str, Handler]:
    """Handlers bound to this process's scoring context (model cache, cut-offs, strategy)."""

    async def on_case_opened(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseOpened)
        await service.record_case_opened(
            session,
            tenant=message.envelope.tenant,
            event=message.payload,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    async def on_material_change(session: AsyncSession, message: Received) -> None:
        """case.updated, payment.received and ptp.broken: what changed, then rescore."""
        event = message.payload
        dpd: int | None = None
        amount: Decimal | None = None
        broken: int | None = None
        if isinstance(event, CaseUpdated):
            dpd, amount = event.days_past_due, event.amount_outstanding
        elif isinstance(event, PaymentReceived):
            dpd, amount = event.days_past_due_after, event.amount_outstanding_after
        elif isinstance(event, PtpBroken):
            broken = event.broken_promises_total
        else:  # pragma: no cover - the registry below only routes these types here
            raise TypeError(f"unexpected payload {type(event).__name__}")
        await service.record_case_change(
            session,
            tenant=message.envelope.tenant,
            case_id=event.case_id,
            days_past_due=dpd,
            amount_outstanding=amount,
            broken_promises=broken,
            correlation_id=message.envelope.correlation_id,
            causation_id=str(message.envelope.event_id),
            now=utc_now(),
            ctx=ctx,
        )

    async def on_debtor_erased(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, DebtorErased)
        await service.record_debtor_erased(
            session, tenant=message.envelope.tenant, event=message.payload, now=utc_now()
        )

    return {
        CaseOpened.event_type: on_case_opened,
        DebtorErased.event_type: on_debtor_erased,
        CaseUpdated.event_type: on_material_change,
        PaymentReceived.event_type: on_material_change,
        PtpBroken.event_type: on_material_change,
    }
