"""Transactional outbox: events are rows written with the state change, published by a relay.

A request or message handler calls `enqueue_event` inside its transaction; nothing is sent to
Kafka from a handler. `OutboxRelay` publishes unpublished rows in id order (so per key order
holds), records partition/offset, and keeps running while the broker is down. It also notices a
broker that lost acknowledged data (the embedded broker keeps everything in memory) by
comparing end offsets with what it published, and replays the retained rows of that topic;
consumers dedupe by event id, so a replay is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer, TopicPartition
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared.aio import bounded, uncancel
from shared.contracts import Envelope, utc_now
from shared.logcheck import SeenRecord, fingerprint, judge_partitions
from shared.messaging import outbox, relay_lease
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

_TOUCHED = "qingshou_outbox_touched"
_wakers: list[Callable[[], None]] = []


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    # Publishing right after commit keeps end-to-end latency near the broker's round trip
    # instead of the relay's idle poll interval.
    if session.info.pop(_TOUCHED, False):
        for wake in list(_wakers):
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_touch(session: Session) -> None:
    session.info.pop(_TOUCHED, None)


async def enqueue_event(session: AsyncSession, *, topic: str, envelope: Envelope) -> None:
    """Stage `envelope` for publication on `topic`, in the caller's transaction."""
    await enqueue_raw(
        session,
        topic=topic,
        event_id=str(envelope.event_id),
        key=envelope.key,
        event_type=envelope.type,
        value=envelope.to_bytes(),
        headers=headers_of(envelope),
    )


def headers_of(envelope: Envelope) -> dict[str, str]:
    """Kafka headers of an event: enough for a consumer (a dialer of one tenant) to route or
    filter without decoding the body."""
    return {
        "event_type": envelope.type,
        "event_id": str(envelope.event_id),
        "correlation_id": envelope.correlation_id,
        "tenant": envelope.tenant,
        "content_type": "application/json",
    }


async def enqueue_many(session: AsyncSession, *, topic: str, envelopes: list[Envelope]) -> None:
    """Stage many events in one multi-row insert (bulk imports), in the caller's transaction."""
    if not envelopes:
        return
    now = utc_now()
    await session.execute(
        sa.insert(outbox),
        [
            {
                "event_id": str(e.event_id),
                "topic": topic,
                "key": e.key,
                "event_type": e.type,
                "value": e.to_bytes(),
                "headers": headers_of(e),
                "created_at": now,
            }
            for e in envelopes
        ],
    )
    session.sync_session.info[_TOUCHED] = True


async def enqueue_raw(
    session: AsyncSession,
    *,
    topic: str,
    event_id: str,
    key: str | None,
    event_type: str,
    value: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    """Stage arbitrary bytes (used for dead letters, whose body may not be a valid envelope)."""
    await session.execute(
        sa.insert(outbox).values(
            event_id=event_id,
            topic=topic,
            key=key,
            event_type=event_type,
            value=value,
            headers=headers,
            created_at=utc_now(),
        )
    )
    session.sync_session.info[_TOUCHED] = True


def kafka_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """A plain producer: acks from all replicas, no idempotence or transactions (not needed)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        linger_ms=1,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        client_id=f"qingshou-relay-{os.getpid()}",
    )


class OutboxRelay:
    """Publishes the outbox of one service database to Kafka."""

    def __init__(
        self,
        *,
        name: str,
        sessions: async_sessionmaker[AsyncSession],
        settings: ServiceSettings,
    ) -> None:
        self.name = name
        self._sessions = sessions
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # Per partition: the record the next continuity probe checks, and the latest published
        # (which becomes the mark once a probe has found the log intact).
        self._marks: dict[TopicPartition, SeenRecord] = {}
        self._latest: dict[TopicPartition, SeenRecord] = {}
        self._producer: AIOKafkaProducer | None = None
        self.published_total = 0
        self.replayed_total = 0
        self.connected = False

    def wake(self) -> None:
        """Ask the relay to look at the outbox now."""
        self._wake.set()

    async def run(self) -> None:
        """Publish until `stop()`; never raises on broker or database trouble, it backs off."""
        try:
            await self._run()
        finally:
            if not self._stopping:
                log.error("outbox relay %s stopped publishing unexpectedly", self.name)

    async def _run(self) -> None:
        _wakers.append(self.wake)
        backoff = 0.1
        loop = asyncio.get_running_loop()
        next_probe = 0.0
        next_purge = 0.0
        marks_loaded = False
        try:
            while not self._stopping:
                try:
                    if not marks_loaded:  # in the loop: a database down at start is retried
                        await self._load_marks()
                        marks_loaded = True
                    if not await self._hold_lease():
                        await self._sleep(self._settings.relay_probe_interval_s)
                        continue
                    await self._ensure_clients()
                    if loop.time() >= next_probe:
                        await self._check_continuity()
                        next_probe = loop.time() + self._settings.relay_probe_interval_s
                    if loop.time() >= next_purge:
                        await self._purge_old()
                        next_purge = loop.time() + 300
                    sent = await self.publish_batch()
                    backoff = 0.1
                    if sent < self._settings.relay_batch_size:
                        await self._sleep(self._settings.relay_idle_poll_ms / 1000)
                        # Let a burst of commits gather so it goes out as one batch.
                        await asyncio.sleep(self._settings.relay_linger_ms / 1000)
                except asyncio.CancelledError:
                    if self._stopping:
                        raise
                    # Not our stop: the client cancelled something we were awaiting (seen when
                    # a broker restart breaks the producer mid-send). Until this was caught the
                    # relay ended here without a word, and the outbox grew until a restart.
                    uncancel()
                    reason = "the client was cancelled under us"
                except Exception as exc:
                    reason = str(exc) or type(exc).__name__
                else:
                    continue
                self.connected = False
                log.warning("outbox relay %s: %s; retrying in %.1fs", self.name, reason, backoff)
                await self._close_clients()
                await self._sleep(backoff, wakeable=False)
                backoff = min(backoff * 2, 5.0)
        finally:
            if self.wake in _wakers:
                _wakers.remove(self.wake)
            await self._close_clients()

    async def stop(self) -> None:
        """Ask the loop to finish its current batch and exit."""
        self._stopping = True
        self._wake.set()

    async def _sleep(self, seconds: float, *, wakeable: bool = True) -> None:
        """Sleep until `seconds` pass or, if `wakeable`, a commit stages an event. A backoff
        is not wakeable: new events must not turn a broker outage into a reconnect storm."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
            self._wake.clear()
            if wakeable:
                break

    async def _ensure_clients(self) -> None:
        if self._producer is None:
            producer = kafka_producer(self._settings)
            try:
                await self._bounded(producer.start(), what="starting the producer")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._bounded(producer.stop(), what="closing the producer")
                raise
            self._producer = producer
        self.connected = True

    async def _close_clients(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                # stop() waits for every pending batch: with the broker gone it can wait for ever.
                await self._bounded(producer.stop(), what="closing the producer")
            except asyncio.CancelledError:
                # The broken client cancelling its own close must not end the relay either.
                if self._stopping:
                    raise
                uncancel()
            except Exception as exc:  # closing a broken client must not mask the cause
                log.debug("closing kafka producer: %s", exc)

    async def _bounded(self, step: Coroutine[Any, Any, T], *, what: str) -> T:
        """A client step for at most twice the request timeout (`shared.aio.bounded`)."""
        return await bounded(
            step, seconds=2 * self._settings.kafka_request_timeout_ms / 1000, what=what
        )

    async def _hold_lease(self) -> bool:
        """Take or renew the relay lease; only the holder publishes this database's outbox."""
        now = utc_now()
        until = now + timedelta(seconds=max(10.0, self._settings.relay_probe_interval_s * 5))
        async with self._sessions() as session, session.begin():
            renewed = await session.execute(
                sa.update(relay_lease)
                .where(relay_lease.c.name == self.name)
                .where(sa.or_(relay_lease.c.holder == self._holder, relay_lease.c.expires_at < now))
                .values(holder=self._holder, expires_at=until)
            )
            if renewed.rowcount:  # type: ignore[attr-defined]
                return True
            exists = await session.scalar(
                sa.select(sa.func.count())
                .select_from(relay_lease)
                .where(relay_lease.c.name == self.name)
            )
            if exists:
                return False
            await session.execute(
                sa.insert(relay_lease).values(name=self.name, holder=self._holder, expires_at=until)
            )
            return True

    async def publish_batch(self) -> int:
        """Publish the oldest unpublished rows; returns how many were published."""
        assert self._producer is not None
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    sa.select(
                        outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers
                    )
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(self._settings.relay_batch_size)
                )
            ).all()
        if not rows:
            return 0
        futures = []
        keys: list[bytes | None] = []
        for row in rows:
            headers = [(k, str(v).encode()) for k, v in (row.headers or {}).items()]
            keys.append(row.key.encode() if row.key is not None else None)
            futures.append(
                await self._producer.send(
                    row.topic, value=row.value, key=keys[-1], headers=headers or None
                )
            )
        results: list[Any] = await asyncio.gather(*futures, return_exceptions=True)
        done: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        for row, key, result in zip(rows, keys, results, strict=True):
            if isinstance(result, BaseException):
                first_error = first_error or result
                continue
            done.append({"row_id": row.id, "p": result.partition, "o": result.offset})
            tp = TopicPartition(row.topic, result.partition)
            seen = SeenRecord(result.offset, fingerprint(key, row.value))
            latest = self._latest.get(tp)
            if latest is None or result.offset > latest.offset:
                self._latest[tp] = seen
            # The record the next probe checks stays the one the last probe left (or the first
            # since): moving it with every publish let a log replaced between two probes pass,
            # once the new log had grown past the mark (a broker that lost a topic twice in a
            # few seconds: 54 plans acknowledged, then gone, at 10,000 cases).
            self._marks.setdefault(tp, seen)
        if done:
            now = utc_now()
            async with self._sessions() as session, session.begin():
                await session.execute(
                    sa.update(outbox)
                    .where(outbox.c.id == sa.bindparam("row_id"))
                    .values(
                        published_at=now,
                        kafka_partition=sa.bindparam("p"),
                        kafka_offset=sa.bindparam("o"),
                    ),
                    done,
                    execution_options={"synchronize_session": False},
                )
            self.published_total += len(done)
        if first_error is not None:
            raise first_error
        return len(done)

    async def _load_marks(self) -> None:
        """Remember the last published record of each partition (from the outbox itself)."""
        async with self._sessions() as session:
            last = (
                sa.select(
                    outbox.c.topic,
                    outbox.c.kafka_partition,
                    sa.func.max(outbox.c.kafka_offset).label("offset"),
                )
                .where(outbox.c.published_at.is_not(None))
                .group_by(outbox.c.topic, outbox.c.kafka_partition)
                .subquery()
            )
            rows = await session.execute(
                sa.select(
                    outbox.c.topic,
                    outbox.c.kafka_partition,
                    outbox.c.kafka_offset,
                    outbox.c.key,
                    outbox.c.value,
                ).join(
                    last,
                    sa.and_(
                        outbox.c.topic == last.c.topic,
                        outbox.c.kafka_partition == last.c.kafka_partition,
                        outbox.c.kafka_offset == last.c.offset,
                    ),
                )
            )
            self._marks = {
                TopicPartition(r.topic, r.kafka_partition): SeenRecord(
                    r.kafka_offset,
                    fingerprint(r.key.encode() if r.key is not None else None, r.value),
                )
                for r in rows
            }
            self._latest = dict(self._marks)

    async def _check_continuity(self) -> None:
        """Replay a topic whose partitions no longer hold what we were acknowledged for."""
        if not self._marks:
            return
        # What was published before the probe started: a partition found intact moves its
        # mark there (a record published later might already be in a log replaced after the
        # probe looked, and must not become the mark unchecked).
        latest_before = dict(self._latest)
        replaced, intact = await judge_partitions(
            self._settings.kafka_bootstrap_servers,
            dict(self._marks),
            request_timeout_ms=self._settings.kafka_request_timeout_ms,
        )
        for tp in intact - replaced:
            if tp in latest_before and tp in self._marks:
                self._marks[tp] = latest_before[tp]
        for topic in sorted({tp.topic for tp in replaced}):
            async with self._sessions() as session, session.begin():
                result = await session.execute(
                    sa.update(outbox)
                    .where(outbox.c.topic == topic, outbox.c.published_at.is_not(None))
                    .values(published_at=None, kafka_partition=None, kafka_offset=None)
                )
            count = int(result.rowcount)  # type: ignore[attr-defined]
            self.replayed_total += count
            self._marks = {tp: m for tp, m in self._marks.items() if tp.topic != topic}
            self._latest = {tp: m for tp, m in self._latest.items() if tp.topic != topic}
            log.warning(
                "broker lost acknowledged messages on %s; replaying %d retained events",
                topic,
                count,
                extra={"topic": topic, "replayed": count},
            )

    async def _purge_old(self) -> None:
        cutoff = utc_now() - timedelta(hours=self._settings.outbox_retention_hours)
        async with self._sessions() as session, session.begin():
            await session.execute(
                sa.delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff
                )
            )

    async def backlog(self) -> int:
        """Rows waiting to be published (for readiness and metrics)."""
        async with self._sessions() as session:
            return await unpublished_count(session)


async def unpublished_count(session: AsyncSession) -> int:
    """Outbox rows not yet published (counted on the partial index of unpublished rows)."""
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    )
    return int(count or 0)
