"""Cases Kafka handlers: scores and contact outcomes come back to the system of record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import service
from shared.bus import Handler, Received
from shared.contracts import CaseScored, ContactOutcomeRecorded, ScoreOverridden, utc_now
from shared.contracts.topics import CONTACT_EVENTS, SCORING_EVENTS

TOPICS: tuple[str, ...] = (SCORING_EVENTS, CONTACT_EVENTS)


def make_handlers(
    policy: service.Policy, clock: Callable[[], datetime] = utc_now
) -> dict[str, Handler]:
    """Handlers that apply the tenant's case policy."""

    def ctx(message: Received) -> service.Context:
        return service.Context(
            now=clock(),
            correlation_id=message.envelope.correlation_id,
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

    return {
        CaseScored.event_type: on_scored,
        ScoreOverridden.event_type: on_override,
        ContactOutcomeRecorded.event_type: on_outcome,
    }


HANDLERS: dict[str, Handler] = make_handlers(service.DEFAULT_POLICY)
