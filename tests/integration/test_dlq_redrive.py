"""Re-driving a dead letter after a fix, over the real broker and a real database: the
consumer that gave up processes it once; a consumer that had processed it skips it."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import EmbeddedBroker
from shared.dlq import redrive
from tests.helpers import count_rows
from tests.integration.test_message_processor import (
    Recorder,
    case_opened_envelope,
    db_url,  # noqa: F401 - the fixture
    processor,
    run,
)


async def _read(
    broker: EmbeddedBroker, topic: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",  # no group: nothing to join
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(records)
            if len(found) >= count:
                break
    finally:
        await consumer.stop()
    return found


async def test_a_redriven_dead_letter_is_processed_once_by_the_consumer_that_gave_up(
    broker: EmbeddedBroker,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    value = case_opened_envelope().to_bytes()
    # The consumer "test" hit a bug and dead-lettered the message; the DLQ holds it as the
    # bus writes it (original key and value, who gave up, where it came from).
    buggy = processor(Recorder(failures=99), retries=0)
    [first] = await run(sessions, buggy, _as_record(value, headers=()))
    assert first.outcome == "dead_lettered"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            "cases.events.dlq",
            value=value,
            key=b"case-1",
            headers=[
                ("dlq_consumer", b"test"),
                ("dlq_original_topic", b"cases.events"),
                ("dlq_error", b"RuntimeError: boom"),
            ],
        )
    finally:
        await producer.stop()

    done = await redrive(
        bootstrap_servers=broker.bootstrap_servers, dlq_topic="cases.events.dlq", idle_s=1.0
    )
    assert (done.sent, done.by_consumer) == (1, {"test": 1})
    again = await redrive(
        bootstrap_servers=broker.bootstrap_servers, dlq_topic="cases.events.dlq", idle_s=1.0
    )
    assert again.sent == 0  # progress is kept: nothing is sent twice

    [redriven] = await _read(broker, "cases.events", 1)
    assert (redriven.key, redriven.value) == (b"case-1", value)
    assert dict(redriven.headers)["dlq_redrive_for"] == b"test"

    fixed = Recorder()
    proc = processor(fixed)
    [second] = await run(sessions, proc, redriven)
    assert second.outcome == "processed"
    assert fixed.calls == 1
    # Delivered once more (a redelivery): now a duplicate like any other.
    [third] = await run(sessions, proc, redriven)
    assert third.outcome == "duplicate"
    # A consumer that processed the original never runs it twice.
    other = Recorder()
    healthy = processor(other)
    healthy.consumer_name = "healthy"
    assert [d.outcome for d in await run(sessions, healthy, _as_record(value, headers=()))] == [
        "processed"
    ]
    assert [d.outcome for d in await run(sessions, healthy, redriven)] == ["duplicate"]
    assert other.calls == 1
    assert await count_rows(engine, "inbox") == 2


def _as_record(
    value: bytes, *, headers: tuple[tuple[str, bytes], ...]
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="cases.events",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"case-1",
        value=value,
        checksum=None,
        serialized_key_size=6,
        serialized_value_size=len(value),
        headers=headers,
    )
