"""Compliance Kafka handlers: every event on every topic goes into the evidence chain."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance import service
from shared.bus import ANY_EVENT, Handler, Received
from shared.contracts import utc_now
from shared.contracts.topics import MAIN_TOPICS


async def on_any_event(session: AsyncSession, message: Received) -> None:
    await service.append_event(
        session, topic=message.topic, envelope=message.envelope, now=utc_now()
    )


TOPICS: tuple[str, ...] = MAIN_TOPICS
HANDLERS: dict[str, Handler] = {ANY_EVENT: on_any_event}
