"""Scoring Kafka handlers: decode the contract, call the service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import service
from shared.bus import Handler, Received
from shared.contracts import CaseOpened, utc_now
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

    return {CaseOpened.event_type: on_case_opened}
