"""Compliance Kafka handlers: every event on every topic goes into the evidence chain, and
what the independent re-check needs is learned from it in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
    return {ANY_EVENT: EvidenceHandler(pii_key=pii_key, recheck=recheck)}


class EvidenceHandler:
    """Appends every event to the evidence log, then lets the re-check learn from it. A polled
    batch is appended at once (`prepare`, a `shared.bus.BatchHandler`): per message, that
    saves the dedupe query and the entry, node and head writes, which were most of the
    consumer's cost here."""

    def __init__(self, *, pii_key: bytes, recheck: service.RecheckConfig | None = None) -> None:
        self.pii_key = pii_key
        self.config = recheck or service.RecheckConfig()

    async def prepare(self, session: AsyncSession, messages: Sequence[Received]) -> None:
        """Append the batch's events in order, in the batch's savepoint."""
        await service.prepare_appends(
            session,
            items=[(m.topic, m.envelope) for m in messages if _logged(m)],
            now=utc_now(),
            pii_key=self.pii_key,
        )

    async def __call__(self, session: AsyncSession, message: Received) -> None:
        if not _logged(message):
            return
        pii_key, config = self.pii_key, self.config
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
        if not service.observes(message.envelope.type):
            return
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


def _logged(message: Received) -> bool:
    # A checkpoint is about the log; logging it would grow the log forever.
    return message.envelope.type != CheckpointIssued.event_type
