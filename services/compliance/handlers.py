"""Compliance Kafka handlers: every event on every topic goes into the evidence chain, and
what the independent re-check needs is learned from it in the same transaction."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance import privacy, service
from shared.bus import ANY_EVENT, Handler, Received
from shared.contracts import (
    CheckpointIssued,
    DebtorErased,
    UnknownEventError,
    parse_payload,
    utc_now,
)
from shared.contracts.topics import MAIN_TOPICS

TOPICS: tuple[str, ...] = MAIN_TOPICS
log = logging.getLogger(__name__)


def make_handlers(
    *, pii_key: bytes, recheck: service.RecheckConfig | None = None
) -> dict[str, Handler]:
    """The one handler: append whatever arrives (personal data replaced by keyed hashes), then
    re-check the contacts the event bears on. A copy of an event already logged does nothing."""
    config = recheck or service.RecheckConfig()

    async def on_any_event(session: AsyncSession, message: Received) -> None:
        if message.envelope.type == CheckpointIssued.event_type:
            return  # a checkpoint is about the log; logging it would grow the log forever
        now = utc_now()
        entry = await service.append_event(
            session,
            topic=message.topic,
            envelope=message.envelope,
            now=now,
            pii_key=pii_key,
        )
        if entry is None:
            return
        if message.envelope.type == DebtorErased.event_type:
            # Not part of the re-check below: an erasure that fails must be retried (and
            # dead-lettered if it cannot succeed), never logged and forgotten.
            try:
                payload = parse_payload(message.envelope)
            except (UnknownEventError, ValueError):
                log.warning("debtor.erased %s has no known contract", message.envelope.event_id)
            else:
                assert isinstance(payload, DebtorErased)
                await privacy.apply_erasure(
                    session,
                    event=payload,
                    envelope=message.envelope,
                    seq=entry.seq,
                    now=now,
                    pii_key=pii_key,
                )
        try:
            # The log must not depend on the re-check: a fault in judging the event rolls
            # back only what the judging wrote (a savepoint); the entry stays appended.
            async with session.begin_nested():
                await service.observe(
                    session, envelope=message.envelope, seq=entry.seq, now=now, config=config
                )
        except SQLAlchemyError:
            raise  # the database itself failed: retry the whole message
        except Exception:
            log.exception(
                "re-check of %s %s failed; the event is logged, not judged",
                message.envelope.type,
                message.envelope.event_id,
            )

    return {ANY_EVENT: on_any_event}
