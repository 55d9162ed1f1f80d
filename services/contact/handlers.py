"""Contact Kafka handlers: decode the contract, call the service under the envelope's tenant."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.contact import service
from shared.bus import Handler, PermanentMessageError, Received
from shared.contracts import (
    CaseClosed,
    CaseOpened,
    CaseScored,
    ContactOutcome,
    DebtorErased,
    DebtorPreferencesChanged,
    HoldPlaced,
    HoldReleased,
    utc_now,
)
from shared.contracts.topics import CASES_EVENTS, CONTACT_OUTCOMES, SCORING_EVENTS

TOPICS: tuple[str, ...] = (CASES_EVENTS, SCORING_EVENTS, CONTACT_OUTCOMES)


def _refusing_other_tenants(handler: Handler) -> Handler:
    """An event naming another tenant's record would change that tenant's state: it is never
    applied, and retrying cannot help, so it goes straight to the DLQ."""

    async def handle(session: AsyncSession, message: Received) -> None:
        try:
            await handler(session, message)
        except service.ForeignRecord as exc:
            raise PermanentMessageError(
                f"{message.envelope.type} of tenant {message.envelope.tenant!r} names a record "
                f"of another tenant ({exc.why})"
            ) from exc

    return handle


def make_handlers(packs: tuple[str, ...]) -> dict[str, Handler]:
    """Handlers that plan under the tenant's rule packs."""

    async def on_case_opened(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseOpened)
        await service.record_case_opened(
            session, event=message.payload, envelope=message.envelope, now=utc_now(), packs=packs
        )

    async def on_case_scored(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseScored)
        await service.record_case_scored(
            session, event=message.payload, envelope=message.envelope, now=utc_now(), packs=packs
        )

    async def on_outcome(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, ContactOutcome)
        await service.record_outcome(
            session,
            outcome=message.payload,
            tenant=message.envelope.tenant,
            correlation_id=message.envelope.correlation_id,
            now=utc_now(),
            packs=packs,
        )

    async def on_hold_placed(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, HoldPlaced)
        await service.record_hold_placed(
            session,
            event=message.payload,
            tenant=message.envelope.tenant,
            correlation_id=message.envelope.correlation_id,
            now=utc_now(),
            packs=packs,
        )

    async def on_hold_released(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, HoldReleased)
        await service.record_hold_released(
            session, event=message.payload, envelope=message.envelope, now=utc_now(), packs=packs
        )

    async def on_preferences(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, DebtorPreferencesChanged)
        await service.record_preferences(
            session,
            event=message.payload,
            tenant=message.envelope.tenant,
            correlation_id=message.envelope.correlation_id,
            now=utc_now(),
            packs=packs,
        )

    async def on_case_closed(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, CaseClosed)
        await service.record_case_closed(
            session,
            event=message.payload,
            tenant=message.envelope.tenant,
            correlation_id=message.envelope.correlation_id,
            now=utc_now(),
        )

    async def on_debtor_erased(session: AsyncSession, message: Received) -> None:
        assert isinstance(message.payload, DebtorErased)
        await service.record_debtor_erased(
            session,
            event=message.payload,
            tenant=message.envelope.tenant,
            correlation_id=message.envelope.correlation_id,
            now=utc_now(),
        )

    handlers: dict[str, Handler] = {
        CaseClosed.event_type: on_case_closed,
        DebtorErased.event_type: on_debtor_erased,
        DebtorPreferencesChanged.event_type: on_preferences,
        HoldPlaced.event_type: on_hold_placed,
        HoldReleased.event_type: on_hold_released,
        CaseOpened.event_type: on_case_opened,
        CaseScored.event_type: on_case_scored,
        ContactOutcome.event_type: on_outcome,
    }
    return {event_type: _refusing_other_tenants(h) for event_type, h in handlers.items()}
