"""Kafka consumer runner: inbox dedupe, commit after the DB transaction, retries, dead letters.

Each polled batch of a partition is handled in one database transaction (throughput), each
message inside its own SAVEPOINT (isolation): a message that keeps failing is rolled back alone
and dead-lettered, through the outbox, to `<topic>.dlq` with the error in its headers. The
offset is committed only after that transaction commits, so a crash replays the batch and the
inbox turns the replay into a no-op. Infrastructure failures (database or broker down) are not
the message's fault: the batch is retried from its first offset, without counting towards DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.aio import bounded, uncancel
from shared.contracts import Envelope, EventPayload, UnknownEventError, parse_payload, utc_now
from shared.contracts.topics import dlq_for
from shared.logcheck import SeenRecord, fingerprint, judge_partitions
from shared.logging import correlation_scope
from shared.messaging import inbox
from shared.outbox import enqueue_raw
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """A decoded message as a handler sees it."""

    envelope: Envelope
    payload: EventPayload | None  # None for ANY_EVENT handlers (no contract is enforced)
    topic: str
    partition: int
    offset: int


Handler = Callable[[AsyncSession, Received], Awaitable[None]]


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that does part of its work once per polled batch: `prepare` gets the batch's
    new messages (payloads not parsed) in the batch's savepoint, before the handler is called
    for each of them. If the batch fails, its messages are handled one by one without
    `prepare`, so a handler must not depend on it having run."""

    async def __call__(self, session: AsyncSession, message: Received) -> None: ...

    async def prepare(self, session: AsyncSession, messages: Sequence[Received]) -> None: ...


#: Key of a handler that receives every event type, contract or not (the audit log).
ANY_EVENT = "*"

# Infrastructure trouble: retry the whole batch later, never blame (dead-letter) the message.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class PermanentMessageError(Exception):
    """A message that can never succeed (undecodable, unknown contract): dead-letter at once."""


@dataclass(frozen=True)
class Delivery:
    """What one message came to, for tests and metrics."""

    message_id: str
    outcome: str  # processed | duplicate | dead_lettered | ignored


#: Header naming the consumer a message is re-driven for (see shared/dlq.py).
REDRIVE_HEADER = "dlq_redrive_for"


def redriven_for(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The consumer a re-driven message is meant for, or None for an ordinary message."""
    for key, value in record.headers or ():
        if key == REDRIVE_HEADER:
            return bytes(value).decode(errors="replace")
    return None


def message_id_of(record: ConsumerRecord[bytes, bytes]) -> tuple[str, Envelope | None]:
    """The dedupe id: the envelope's event id, or the record's coordinates if undecodable."""
    try:
        envelope = Envelope.from_bytes(record.value or b"")
    except (ValidationError, ValueError):
        return f"raw:{record.topic}:{record.partition}:{record.offset}", None
    return str(envelope.event_id), envelope


class MessageProcessor:
    """Applies handlers to records inside a caller-owned transaction (no Kafka I/O here)."""

    def __init__(
        self,
        *,
        consumer_name: str,
        handlers: Mapping[str, Handler],
        max_retries: int,
        retry_backoff_ms: int,
    ) -> None:
        self.consumer_name = consumer_name
        self.handlers = dict(handlers)
        self.max_retries = max_retries
        self.retry_backoff_ms = retry_backoff_ms

    async def process_batch(
        self, session: AsyncSession, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> list[Delivery]:
        """Handle a batch in the caller's transaction: all at once when every message
        succeeds (one inbox lookup, one inbox insert), else one by one so a bad message is
        isolated, retried and dead-lettered without holding up the others."""
        decoded = [message_id_of(r) for r in records]
        if (
            any(envelope is None for _, envelope in decoded)
            or len(records) < 2
            # A re-driven dead letter is in the inbox as "dead_lettered": only `process` lets
            # the consumer it is meant for try it again (here it would count as a duplicate).
            or any(redriven_for(r) is not None for r in records)
        ):
            return [await self.process(session, r) for r in records]
        ids = [message_id for message_id, _ in decoded]
        seen = set(
            (
                await session.scalars(
                    sa.select(inbox.c.message_id).where(
                        inbox.c.consumer == self.consumer_name, inbox.c.message_id.in_(ids)
                    )
                )
            ).all()
        )
        deliveries: list[Delivery] = []
        remembered: list[dict[str, object]] = []
        try:
            async with session.begin_nested():
                await self._prepare(session, records, decoded, seen)
                for record, (message_id, envelope) in zip(records, decoded, strict=True):
                    assert envelope is not None
                    if message_id in seen:
                        deliveries.append(Delivery(message_id, "duplicate"))
                        continue
                    seen.add(message_id)
                    outcome = await self._apply(session, record, envelope)
                    deliveries.append(Delivery(message_id, outcome))
                    remembered.append(self._inbox_row(record, message_id, outcome, None))
                if remembered:
                    await session.execute(sa.insert(inbox), remembered)
            return deliveries
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            log.info("batch of %d failed (%s); isolating message by message", len(records), exc)
            return [await self.process(session, r) for r in records]

    async def _prepare(
        self,
        session: AsyncSession,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        decoded: Sequence[tuple[str, Envelope | None]],
        seen: set[str],
    ) -> None:
        """Let each `BatchHandler` prepare the messages of the batch it will be called for."""
        batch: dict[int, tuple[BatchHandler, list[Received]]] = {}
        fresh: set[str] = set()
        for record, (message_id, envelope) in zip(records, decoded, strict=True):
            if envelope is None or message_id in seen or message_id in fresh:
                continue
            fresh.add(message_id)
            handler = self.handlers.get(envelope.type) or self.handlers.get(ANY_EVENT)
            if isinstance(handler, BatchHandler):
                _, messages = batch.setdefault(id(handler), (handler, []))
                messages.append(
                    Received(
                        envelope=envelope,
                        payload=None,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
        for handler, messages in batch.values():
            await handler.prepare(session, messages)

    async def _apply(
        self, session: AsyncSession, record: ConsumerRecord[bytes, bytes], envelope: Envelope
    ) -> str:
        """Run the handler for one decoded message; returns "processed" or "ignored"."""
        handler = self.handlers.get(envelope.type)
        typed = handler is not None
        handler = handler or self.handlers.get(ANY_EVENT)
        if handler is None:
            return "ignored"  # other consumers care about this type
        with correlation_scope(envelope.correlation_id):
            payload: EventPayload | None = None
            if typed:
                try:
                    payload = parse_payload(envelope)
                except (ValidationError, UnknownEventError) as exc:
                    raise PermanentMessageError(str(exc)) from exc
            await handler(
                session,
                Received(
                    envelope=envelope,
                    payload=payload,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                ),
            )
        return "processed"

    async def process(
        self, session: AsyncSession, record: ConsumerRecord[bytes, bytes]
    ) -> Delivery:
        """Handle one record once; the caller commits `session` afterwards."""
        message_id, envelope = message_id_of(record)
        target = redriven_for(record)
        if target is not None and target != self.consumer_name:
            # Re-driven for another consumer: this one had the original already (processed or
            # dead-lettered it itself). Without this, an undecodable dead letter, whose id is
            # its offset, would be dead-lettered again by every consumer of the topic.
            return Delivery(message_id, "duplicate")
        seen = await session.scalar(
            sa.select(inbox.c.outcome).where(
                inbox.c.consumer == self.consumer_name, inbox.c.message_id == message_id
            )
        )
        if seen == "dead_lettered" and target == self.consumer_name:
            # Re-driven from the DLQ after a fix (`python -m shared.dlq redrive`): this
            # consumer tries it again; every other consumer still sees a duplicate.
            await session.execute(
                sa.delete(inbox).where(
                    inbox.c.consumer == self.consumer_name, inbox.c.message_id == message_id
                )
            )
            seen = None
        if seen is not None:
            return Delivery(message_id, "duplicate")
        if envelope is None:
            return await self._dead_letter(
                session, record, message_id, PermanentMessageError("undecodable envelope"), 0
            )
        attempt = 0
        while True:
            attempt += 1
            try:
                async with session.begin_nested():
                    outcome = await self._apply(session, record, envelope)
                    await self._remember(session, record, message_id, outcome, None)
                return Delivery(message_id, outcome)
            except TRANSIENT_ERRORS:
                raise
            except PermanentMessageError as exc:
                return await self._dead_letter(session, record, message_id, exc, attempt)
            except Exception as exc:
                if attempt > self.max_retries:
                    return await self._dead_letter(session, record, message_id, exc, attempt)
                log.warning(
                    "handler %s failed on %s (attempt %d): %s",
                    self.consumer_name,
                    message_id,
                    attempt,
                    exc,
                )
                await asyncio.sleep(self.retry_backoff_ms / 1000 * 2 ** (attempt - 1))

    async def _remember(
        self,
        session: AsyncSession,
        record: ConsumerRecord[bytes, bytes],
        message_id: str,
        outcome: str,
        error: str | None,
    ) -> None:
        await session.execute(
            sa.insert(inbox).values(self._inbox_row(record, message_id, outcome, error))
        )

    def _inbox_row(
        self,
        record: ConsumerRecord[bytes, bytes],
        message_id: str,
        outcome: str,
        error: str | None,
    ) -> dict[str, object]:
        return {
            "consumer": self.consumer_name,
            "message_id": message_id,
            "topic": record.topic,
            "kafka_partition": record.partition,
            "kafka_offset": record.offset,
            "outcome": outcome,
            "error": error,
            "processed_at": utc_now(),
        }

    async def _dead_letter(
        self,
        session: AsyncSession,
        record: ConsumerRecord[bytes, bytes],
        message_id: str,
        error: BaseException,
        attempts: int,
    ) -> Delivery:
        detail = f"{type(error).__name__}: {error}"
        log.error(
            "dead-lettering %s from %s[%d]@%d after %d attempt(s): %s",
            message_id,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            detail,
        )
        trace = "".join(traceback.format_exception(error))[-2000:]
        await enqueue_raw(
            session,
            topic=dlq_for(record.topic),
            event_id=str(uuid.uuid4()),
            key=record.key.decode(errors="replace") if record.key is not None else None,
            event_type="dead_letter",
            value=record.value or b"",
            headers={
                "dlq_error": detail[:1000],
                "dlq_trace": trace,
                "dlq_consumer": self.consumer_name,
                "dlq_attempts": str(attempts),
                "dlq_original_topic": record.topic,
                "dlq_original_partition": str(record.partition),
                "dlq_original_offset": str(record.offset),
                "dlq_message_id": message_id,
            },
        )
        await self._remember(session, record, message_id, "dead_lettered", detail[:2000])
        return Delivery(message_id, "dead_lettered")


T = TypeVar("T")


class EventConsumer:
    """A consumer-group member that feeds a `MessageProcessor`, committing after each batch."""

    def __init__(
        self,
        *,
        group_id: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        sessions: async_sessionmaker[AsyncSession],
        settings: ServiceSettings,
        on_processed: Callable[[Sequence[Delivery]], None] | None = None,
        write_gate: asyncio.Lock | None = None,
    ) -> None:
        self.group_id = group_id
        # SQLite's one writer: the requests' queue (ServiceRuntime.request_gate). A batch takes
        # its turn there too; polling the file lock instead, it took the lock again right after
        # each commit and starved requests (a dialer's POST waited over a minute at 10,000
        # cases).
        self._write_gate = write_gate
        self.topics = list(topics)
        self._sessions = sessions
        self._settings = settings
        self._processor = MessageProcessor(
            consumer_name=group_id,
            handlers=handlers,
            max_retries=settings.consumer_max_retries,
            retry_backoff_ms=settings.consumer_retry_backoff_ms,
        )
        self._on_processed = on_processed
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = False
        # Per partition: the record the next log check looks at (the one the last check left,
        # or the first processed since) and the latest processed, which becomes it once a
        # check finds the log intact (see OutboxRelay: a newest-record check passes a log that
        # was replaced and has grown past it).
        self._last_seen: dict[TopicPartition, SeenRecord] = {}
        self._latest_seen: dict[TopicPartition, SeenRecord] = {}
        self.processed_total = 0
        self.rewinds_total = 0
        # Per dead-letter topic, counted once the batch commits (metrics); zero until then.
        self.dead_letters: dict[str, int] = {dlq_for(topic): 0 for topic in self.topics}
        self._start_timeout_s = max(10.0, 3 * settings.kafka_request_timeout_ms / 1000)
        self._blind_checks = 0

    @property
    def assigned(self) -> bool:
        """True once the group has given this member partitions (readiness)."""
        return self._consumer is not None and bool(self._consumer.assignment())

    async def lag(self, *, timeout_s: float) -> dict[TopicPartition, int]:
        """Records between this member's position and the broker's high-water mark, for each
        assigned partition a fetch answer has reported on (empty while not consuming). The
        position includes the batch in hand; each partition's wait is bounded by `timeout_s`."""
        consumer = self._consumer
        if consumer is None:
            return {}
        # Read every mark before awaiting: the assignment can change at any await.
        marks = {tp: consumer.highwater(tp) for tp in consumer.assignment()}
        lags: dict[TopicPartition, int] = {}
        for tp, highwater in marks.items():
            if highwater is None:
                continue
            try:
                async with asyncio.timeout(timeout_s):
                    position = await consumer.position(tp)
            except Exception as exc:  # revoked meanwhile, or no position yet: unknown, not 0
                log.debug("consumer %s: no position for %s: %r", self.group_id, tp, exc)
                continue
            lags[tp] = max(0, highwater - position)
        return lags

    async def stop(self) -> None:
        """Finish the batch in hand, commit, and leave the group."""
        self._stopping = True

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        return AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}-{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
            request_timeout_ms=max(s.kafka_request_timeout_ms, s.kafka_session_timeout_ms + 1000),
            max_poll_records=s.consumer_batch_max,
        )

    async def run(self) -> None:
        """Consume until `stop()`; a broken client is replaced, never left silent."""
        try:
            await self._run()
        finally:
            if not self._stopping:
                log.error("consumer %s stopped consuming unexpectedly", self.group_id)

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                await self._one_client()
                backoff = 0.2
                continue
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                # Not our stop: the client cancelled something we were awaiting (seen when a
                # broker restart breaks a half-started client). Rejoin instead of dying silently.
                uncancel()
                reason = "the client was cancelled under us"
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
            log.warning("consumer %s: %s; rejoining in %.1fs", self.group_id, reason, backoff)
            await self._pause(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _one_client(self) -> None:
        """Start a client, consume until it breaks or we stop, and close it (bounded)."""
        consumer = self._new_consumer()
        try:
            # A start that never returns (seen right after a broker restart, while the group
            # coordinator and topics come back) must not leave the consumer silent.
            await self._bounded(consumer.start(), what="starting the client")
            self._consumer = consumer
            await self._consume(consumer)
        finally:
            self._consumer = None
            try:
                # Closing a client whose start failed mid-bootstrap can hang as well.
                await self._bounded(consumer.stop(), what="closing the old client")
            except Exception as exc:
                log.debug("closing consumer: %s", exc)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if self._stopping:
                raise
            uncancel()

    async def _bounded(self, step: Coroutine[Any, Any, T], *, what: str) -> T:
        """Run a client step for at most the start timeout (`shared.aio.bounded`)."""
        return await bounded(step, seconds=self._start_timeout_s, what=what)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        next_check = loop.time() + self._settings.consumer_log_check_s
        while not self._stopping:
            batches: dict[
                TopicPartition, list[ConsumerRecord[bytes, bytes]]
            ] = await consumer.getmany(
                timeout_ms=200, max_records=self._settings.consumer_batch_max
            )
            for tp, records in batches.items():
                await self._handle_batch(consumer, tp, records)
            if batches:
                # Measured from the end of the work: a member whose batches take longer than
                # the stall period to handle is slow, not stalled (rebuilding it would only
                # make it slower: it was rejoining after every batch).
                last_progress = loop.time()
            if loop.time() >= next_check:
                await self._rewind_replaced(consumer)
                next_check = loop.time() + self._settings.consumer_log_check_s
            if loop.time() - last_progress > self._settings.consumer_stall_seconds:
                await self._check_stalled(consumer)
                last_progress = loop.time()

    async def _rewind_replaced(self, consumer: AIOKafkaConsumer) -> None:
        """Re-read from the start any partition whose log was replaced (broker lost data)."""
        assigned = consumer.assignment()
        seen = {tp: r for tp, r in self._last_seen.items() if tp in assigned}
        latest_before = dict(self._latest_seen)
        replaced, intact = await judge_partitions(
            self._settings.kafka_bootstrap_servers,
            seen,
            request_timeout_ms=self._settings.kafka_request_timeout_ms,
        )
        for tp in intact - replaced:
            if tp in latest_before:
                self._last_seen[tp] = latest_before[tp]
        for tp in replaced:
            log.warning(
                "consumer %s: %s no longer holds offset %d as seen; re-reading it from the start "
                "(the inbox turns what was already processed into no-ops)",
                self.group_id,
                tp,
                seen[tp].offset,
            )
            self._last_seen.pop(tp, None)
            self._latest_seen.pop(tp, None)
            await consumer.seek_to_beginning(tp)
            self.rewinds_total += 1

    async def _handle_batch(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        deliveries: list[Delivery] = []
        try:
            async with (
                self._write_gate or contextlib.nullcontext(),
                self._sessions() as session,
                session.begin(),
            ):
                deliveries = await self._processor.process_batch(session, records)
        except TRANSIENT_ERRORS as exc:
            # Nothing of the batch committed: read it again from its first offset.
            log.warning("consumer %s: transient failure, retrying batch: %s", self.group_id, exc)
            consumer.seek(tp, records[0].offset)
            await asyncio.sleep(1.0)
            return
        await consumer.commit({tp: records[-1].offset + 1})
        last = records[-1]
        processed = SeenRecord(last.offset, fingerprint(last.key, last.value))
        self._latest_seen[tp] = processed
        self._last_seen.setdefault(tp, processed)
        self.processed_total += sum(d.outcome == "processed" for d in deliveries)
        dead = sum(d.outcome == "dead_lettered" for d in deliveries)
        if dead:
            dlq = dlq_for(tp.topic)
            self.dead_letters[dlq] = self.dead_letters.get(dlq, 0) + dead
        if self._on_processed is not None:
            self._on_processed(deliveries)

    async def _check_stalled(self, consumer: AIOKafkaConsumer) -> None:
        """A member that lags but receives nothing, or holds no partitions, is rebuilt."""
        assignment = consumer.assignment()
        if not assignment:
            raise RuntimeError("no partitions assigned for a while")
        blind = 0
        for tp in assignment:
            highwater = consumer.highwater(tp)
            if highwater is None:
                blind += 1  # no fetch answer for it yet (an idle partition still gets answers)
                continue
            position = await self._bounded(consumer.position(tp), what=f"the position of {tp}")
            if position < highwater:
                raise RuntimeError(f"{tp} lags ({position} < {highwater}) but nothing arrives")
        # After a broker restart a member can hold partitions whose fetches never get an answer:
        # no high-water mark anywhere for two stall periods means the client is blind.
        self._blind_checks = self._blind_checks + 1 if blind == len(assignment) else 0
        if self._blind_checks >= 2:
            self._blind_checks = 0
            raise RuntimeError("no fetch answer on any assigned partition for a while")


def describe(deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """Counts per outcome, for logs."""
    counts: dict[str, Any] = {}
    for d in deliveries:
        counts[d.outcome] = counts.get(d.outcome, 0) + 1
    return counts
