"""How the consumer shares its time, against the real embedded broker.

- The stall detector: a member whose batches take longer than the stall period to handle is
  slow, not stalled, and must keep its client (it used to be rebuilt, and rejoin its group,
  after every batch; compliance under load did exactly that). A member that really receives
  nothing while it lags is still rebuilt (test_pipeline's broker kills cover that).
- SQLite's one writer: a batch waits its turn in the requests' queue (the write gate) instead
  of taking the file lock again right after each commit, which starved requests."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker import EmbeddedBroker
from shared.bus import ANY_EVENT, EventConsumer, Received
from shared.contracts import Envelope
from shared.db import session_factory
from shared.settings import ServiceSettings
from tests.conftest import MigratedDatabaseFactory

TOPIC = "cases.events"
MESSAGES = 6
HANDLING_S = 0.4  # per message: a batch of two takes 0.8 s, over the 0.5 s stall period


async def publish(broker: EmbeddedBroker, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        for n in range(count):
            envelope = Envelope(
                type="test.counted",
                version=1,
                producer="test",
                key="k",
                correlation_id="c",
                payload={"n": n},
            )
            await producer.send_and_wait(TOPIC, envelope.model_dump_json().encode(), key=b"k")
    finally:
        await producer.stop()


@pytest.fixture
def db_url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("scoring")


async def test_a_slow_member_is_not_taken_for_a_stalled_one(
    engine: AsyncEngine, broker: EmbeddedBroker, db_url: str
) -> None:
    handled: list[int] = []
    all_handled = asyncio.Event()

    async def slow(_session: object, message: Received) -> None:
        await asyncio.sleep(HANDLING_S)
        handled.append(int(message.envelope.payload["n"]))
        if len(handled) >= MESSAGES:
            all_handled.set()

    settings = ServiceSettings(
        database_url=db_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_request_timeout_ms=2000,
        consumer_batch_max=2,
        consumer_stall_seconds=0.5,
    )
    consumer = EventConsumer(
        group_id="slow-member",
        topics=[TOPIC],
        handlers={ANY_EVENT: slow},
        sessions=session_factory(engine),
        settings=settings,
    )
    clients = 0
    new_consumer = consumer._new_consumer

    def counted() -> object:
        nonlocal clients
        clients += 1
        return new_consumer()

    consumer._new_consumer = counted  # type: ignore[method-assign]
    await publish(broker, MESSAGES)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(all_handled.wait(), 60)
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
    assert sorted(handled) == list(range(MESSAGES))
    assert clients == 1, f"the client was rebuilt {clients - 1} times while merely slow"


async def test_a_batch_waits_its_turn_behind_requests_holding_the_write_gate(
    engine: AsyncEngine, broker: EmbeddedBroker, db_url: str
) -> None:
    handled: list[int] = []
    arrived = asyncio.Event()

    async def record(_session: object, message: Received) -> None:
        handled.append(int(message.envelope.payload["n"]))
        arrived.set()

    gate = asyncio.Lock()
    consumer = EventConsumer(
        group_id="gated-member",
        topics=[TOPIC],
        handlers={ANY_EVENT: record},
        sessions=session_factory(engine),
        settings=ServiceSettings(
            database_url=db_url,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_request_timeout_ms=2000,
        ),
        write_gate=gate,
    )
    await publish(broker, 1)
    task = asyncio.create_task(consumer.run())
    try:
        async with gate:  # a request in its transaction
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 5)
            assert handled == []
        await asyncio.wait_for(arrived.wait(), 30)
        assert handled == [0]
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)
