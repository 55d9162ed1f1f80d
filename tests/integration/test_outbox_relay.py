"""The outbox relay against the real embedded broker and real databases.

Per-key order, publishing after a broker outage, and replay after the broker lost what it had
acknowledged (the embedded broker keeps nothing across a restart).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker import EmbeddedBroker
from shared.contracts import Envelope
from shared.db import session_factory
from shared.outbox import OutboxRelay, enqueue_event
from shared.settings import ServiceSettings
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows
from tests.kafka_helpers import read_topic

TOPIC = "cases.events"


@pytest.fixture
def db_url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("cases")


@pytest.fixture
async def relay(
    engine: AsyncEngine, broker: EmbeddedBroker, db_url: str
) -> AsyncIterator[OutboxRelay]:
    settings = ServiceSettings(
        database_url=db_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_request_timeout_ms=2000,
        relay_probe_interval_s=0.5,
        relay_idle_poll_ms=50,
    )
    r = OutboxRelay(name="test", sessions=session_factory(engine), settings=settings)
    task = asyncio.create_task(r.run())
    yield r
    await r.stop()
    await asyncio.wait_for(task, 15)


def event(key: str, n: int) -> Envelope:
    return Envelope(
        type="test.counted",
        version=1,
        producer="test",
        key=key,
        correlation_id="c",
        payload={"n": n},
    )


async def stage(sessions: async_sessionmaker[AsyncSession], events: list[Envelope]) -> None:
    async with sessions() as session, session.begin():
        for e in events:
            await enqueue_event(session, topic=TOPIC, envelope=e)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_publishes_in_order_per_key(
    relay: OutboxRelay, engine: AsyncEngine, broker: EmbeddedBroker
) -> None:
    sessions = session_factory(engine)
    keys = [f"case-{i}" for i in range(5)]
    n = 0
    for _batch in range(3):
        batch = []
        for _ in range(100):
            batch.append(event(keys[n % 5], n))
            n += 1
        await stage(sessions, batch)
    await eventually(lambda: _none_pending(engine))
    seen = await read_topic(broker.bootstrap_servers, TOPIC, until=300)
    assert len(seen) == 300
    per_key: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for item in seen:
        per_key[item["key"]].append(item["payload"]["n"])
        partitions[item["key"]].add(item["_partition"])
    for key in keys:
        assert per_key[key] == sorted(per_key[key]), key
        assert len(per_key[key]) == 60
        assert len(partitions[key]) == 1  # a key stays on one partition
    assert seen[0]["_headers"]["event_type"] == "test.counted"


async def _none_pending(engine: AsyncEngine) -> bool:
    return await count_rows(engine, "outbox", "published_at IS NULL") == 0


async def test_keeps_accepting_writes_while_the_broker_is_down(
    relay: OutboxRelay, engine: AsyncEngine, broker: EmbeddedBroker
) -> None:
    sessions = session_factory(engine)
    broker.stop(kill=True)
    started = time.monotonic()
    for i in range(50):
        await stage(sessions, [event(f"k{i % 7}", i)])
    write_time = time.monotonic() - started
    assert write_time < 10, f"writes blocked on the broker: {write_time:.1f}s for 50"
    await asyncio.sleep(1.0)
    assert await count_rows(engine, "outbox", "published_at IS NULL") == 50

    broker.start()
    await broker.create_topics()
    await eventually(lambda: _none_pending(engine), timeout_s=40)
    seen = await read_topic(broker.bootstrap_servers, TOPIC, until=50)
    assert sorted(item["payload"]["n"] for item in seen) == list(range(50))


async def test_replays_what_a_restarted_broker_lost(
    relay: OutboxRelay, engine: AsyncEngine, broker: EmbeddedBroker
) -> None:
    sessions = session_factory(engine)
    events = [event(f"k{i % 3}", i) for i in range(30)]
    await stage(sessions, events)
    await eventually(lambda: _none_pending(engine))
    assert len(await read_topic(broker.bootstrap_servers, TOPIC, until=30)) == 30

    broker.stop(kill=True)
    broker.start()
    await broker.create_topics()  # empty again: topics recreated, messages gone

    async def replayed() -> bool:
        return relay.replayed_total >= 30 and await _none_pending(engine)

    await eventually(replayed, timeout_s=40)
    seen = await read_topic(broker.bootstrap_servers, TOPIC, until=30)
    assert {item["event_id"] for item in seen} == {str(e.event_id) for e in events}
    assert len(seen) == 30  # replayed once, not once per probe


async def test_a_cancellation_from_the_client_does_not_end_the_relay(
    engine: AsyncEngine,
    broker: EmbeddedBroker,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka can cancel what the relay awaits when a broker restart breaks the producer
    mid-send. In the 10,000-case broker fault run that ended the relay task without a word,
    and contact's outbox held 8,101 events until the process restarted. The relay must say
    so, back off and go on; only its own stop ends it."""
    from shared import outbox as outbox_module

    real_producer = outbox_module.kafka_producer
    cancelled: list[str] = []

    def producer_cancelled_once(settings: ServiceSettings) -> Any:
        producer = real_producer(settings)
        send, stop = producer.send, producer.stop

        async def send_or_cancel(*args: Any, **kwargs: Any) -> Any:
            if not cancelled:
                cancelled.append(args[0])
                raise asyncio.CancelledError  # what the client raised, not our stop
            return await send(*args, **kwargs)

        async def stop_and_cancel() -> None:
            await stop()
            if cancelled == [TOPIC]:  # the broken client's close cancels too
                cancelled.append("stop")
                raise asyncio.CancelledError

        producer.send, producer.stop = send_or_cancel, stop_and_cancel
        return producer

    monkeypatch.setattr(outbox_module, "kafka_producer", producer_cancelled_once)
    settings = ServiceSettings(
        database_url=db_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_request_timeout_ms=2000,
        relay_idle_poll_ms=50,
    )
    relay = OutboxRelay(name="test", sessions=session_factory(engine), settings=settings)
    task = asyncio.create_task(relay.run())
    try:
        await stage(session_factory(engine), [event(f"k{i % 3}", i) for i in range(20)])
        await eventually(lambda: _none_pending(engine), timeout_s=20)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 15)
    assert cancelled == [TOPIC, "stop"]
    assert "the client was cancelled under us" in caplog.text
    assert "stopped publishing unexpectedly" not in caplog.text
    seen = await read_topic(broker.bootstrap_servers, TOPIC, until=20)
    assert sorted(item["payload"]["n"] for item in seen) == list(range(20))


async def test_event_ids_are_unique_in_the_outbox(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    e = event("k", 1)
    await stage(sessions, [e])
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await stage(sessions, [e])
    assert await count_rows(engine, "outbox") == 1


async def test_a_log_replaced_between_two_probes_is_found_after_it_grew_past_the_mark(
    engine: AsyncEngine, broker: EmbeddedBroker, db_url: str
) -> None:
    """The broker loses a topic and the relay publishes more than it had before the next probe
    (seen at 10,000 cases: a topic lost twice within seconds of a restart). The probe must
    still find the loss: the record it checks is the one the last probe left, not the newest
    publish, which by then sits in the new log and passes."""
    sessions = session_factory(engine)
    relay = OutboxRelay(
        name="manual",
        sessions=sessions,
        settings=ServiceSettings(
            database_url=db_url,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_request_timeout_ms=2000,
        ),
    )
    before = [event(f"k{i % 3}", i) for i in range(30)]
    after = [event(f"k{i % 3}", 100 + i) for i in range(90)]
    try:
        await relay._ensure_clients()
        await stage(sessions, before)
        assert await relay.publish_batch() == 30
        await relay._check_continuity()
        assert relay.replayed_total == 0  # intact: the marks move to what was published

        broker.stop(kill=True)
        broker.start()
        await broker.create_topics()
        await relay._close_clients()
        await relay._ensure_clients()
        await stage(sessions, after)
        assert await relay.publish_batch() == 90  # three times as many per key as before
        await relay._check_continuity()
        assert relay.replayed_total == 120  # every retained event of the topic, again
        assert await relay.publish_batch() == 120
    finally:
        await relay._close_clients()
    seen = await read_topic(broker.bootstrap_servers, TOPIC, until=210)
    assert {item["event_id"] for item in seen} >= {str(e.event_id) for e in before}
