"""Compliance Kafka handlers: every event on every topic goes into the evidence chain."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance import service
from shared.bus import ANY_EVENT, Handler, Received
from shared.contracts import CheckpointIssued, utc_now
from shared.contracts.topics import MAIN_TOPICS

TOPICS: tuple[str, ...] = MAIN_TOPICS


def make_handlers(*, pii_key: bytes) -> dict[str, Handler]:
    """The one handler: append whatever arrives, personal data replaced by keyed hashes."""

    async def on_any_event(session: AsyncSession, message: Received) -> None:
        if message.envelope.type == CheckpointIssued.event_type:
            return  # a checkpoint is about the log; logging it would grow the log forever
        await service.append_event(
            session,
            topic=message.topic,
            envelope=message.envelope,
            now=utc_now(),
            pii_key=pii_key,
        )

    return {ANY_EVENT: on_any_event}
