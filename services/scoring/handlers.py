"""Scoring Kafka handlers: decode the contract, call the service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import service
from shared.bus import Handler, Received
from shared.contracts import CaseOpened, utc_now
from shared.contracts.topics import CASES_EVENTS


async def on_case_opened(session: AsyncSession, message: Received) -> None:
    assert isinstance(message.payload, CaseOpened)
    await service.score_opened_case(
        session, event=message.payload, envelope=message.envelope, now=utc_now()
    )


TOPICS: tuple[str, ...] = (CASES_EVENTS,)
HANDLERS: dict[str, Handler] = {CaseOpened.event_type: on_case_opened}
