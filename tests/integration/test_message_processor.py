"""Inbox dedupe, retries and dead-lettering against a real database (SQLite and PostgreSQL).

The records are built by hand (no broker needed to decide what a message comes to); the
broker round trip is covered by test_outbox_relay and the end-to-end tests.
"""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import Delivery, MessageProcessor, Received
from shared.contracts import CaseOpened, Envelope, build_envelope, utc_now
from shared.messaging import inbox, outbox
from shared.outbox import enqueue_event
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows


def case_opened_envelope(version: int = 1) -> Envelope:
    case_id = uuid.uuid4()
    envelope = build_envelope(
        CaseOpened(
            case_id=case_id,
            account_id="A-1",
            debtor_id=uuid.uuid4(),
            debtor_time_zone="Asia/Shanghai",
            product="card",
            currency="CNY",
            principal="100",
            interest="0",
            fees="0",
            amount_outstanding="100",
            due_date=date(2026, 10, 1),
            days_past_due=3,
            industry_risk=10,
            opened_at=utc_now(),
        ),
        key=str(case_id),
        producer="cases",
        correlation_id="corr-1",
        tenant="default",
    )
    return envelope.model_copy(update={"version": version})


def record(value: bytes, offset: int = 0, key: bytes | None = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="cases.events",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=(),
    )


@pytest.fixture
def db_url(migrated_database: MigratedDatabaseFactory) -> str:
    # Any service database has the messaging tables; scoring's is the smallest.
    return migrated_database("scoring")


class Recorder:
    """A handler that stages an event of its own (a visible side effect) and may fail."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    async def __call__(self, session: AsyncSession, message: Received) -> None:
        self.calls += 1
        assert isinstance(message.payload, CaseOpened)
        await enqueue_event(
            session,
            topic="scoring.events",
            envelope=message.envelope.model_copy(update={"event_id": uuid.uuid4()}),
        )
        if self.calls <= self.failures:
            raise RuntimeError(f"boom {self.calls}")


def processor(handler: Recorder, retries: int = 2) -> MessageProcessor:
    return MessageProcessor(
        consumer_name="test",
        handlers={"case.opened": handler},
        max_retries=retries,
        retry_backoff_ms=1,
    )


async def run(
    sessions: async_sessionmaker[AsyncSession],
    proc: MessageProcessor,
    *records: ConsumerRecord[bytes, bytes],
) -> list[Delivery]:
    async with sessions() as session, session.begin():
        return [await proc.process(session, r) for r in records]


async def test_redelivery_is_a_no_op(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    handler = Recorder()
    proc = processor(handler)
    value = case_opened_envelope().to_bytes()
    first = await run(sessions, proc, record(value, 0), record(value, 1))
    again = await run(sessions, proc, record(value, 7))
    assert [d.outcome for d in first + again] == ["processed", "duplicate", "duplicate"]
    assert handler.calls == 1
    assert await count_rows(engine, "outbox") == 1
    assert await count_rows(engine, "inbox") == 1


async def test_transient_handler_failure_is_retried_in_place(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    handler = Recorder(failures=2)
    deliveries = await run(
        sessions, processor(handler, retries=2), record(case_opened_envelope().to_bytes())
    )
    assert [d.outcome for d in deliveries] == ["processed"]
    assert handler.calls == 3
    # The two failed attempts' writes were rolled back with their savepoints.
    assert await count_rows(engine, "outbox") == 1


async def test_persistent_failure_goes_to_the_dlq_with_the_error(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    handler = Recorder(failures=100)
    envelope = case_opened_envelope()
    good = case_opened_envelope()
    deliveries = await run(
        sessions,
        processor(handler, retries=2),
        record(envelope.to_bytes(), 5),
        record(good.to_bytes(), 6),
    )
    assert [d.outcome for d in deliveries] == ["dead_lettered", "dead_lettered"]
    assert handler.calls == 6  # 3 attempts each, then the DLQ
    async with sessions() as session:
        rows = (await session.execute(sa.select(outbox).order_by(outbox.c.id))).all()
        marks = (await session.execute(sa.select(inbox.c.outcome, inbox.c.error))).all()
    assert [r.topic for r in rows] == ["cases.events.dlq", "cases.events.dlq"]
    assert rows[0].value == envelope.to_bytes()
    assert rows[0].headers["dlq_error"] == "RuntimeError: boom 3"
    assert rows[0].headers["dlq_original_offset"] == "5"
    assert rows[0].headers["dlq_attempts"] == "3"
    assert rows[0].headers["dlq_message_id"] == str(envelope.event_id)
    assert {m.outcome for m in marks} == {"dead_lettered"}
    # A redelivered poison message is not retried again.
    again = await run(sessions, processor(handler), record(envelope.to_bytes(), 5))
    assert again[0].outcome == "duplicate"
    assert handler.calls == 6


@pytest.mark.parametrize(
    "value",
    [b"\x00\xffgarbage", b'{"not": "an envelope"}', b""],
    ids=["bytes", "wrong-json", "empty"],
)
async def test_undecodable_message_is_dead_lettered_at_once(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, value: bytes
) -> None:
    handler = Recorder()
    deliveries = await run(sessions, processor(handler), record(value, 42))
    assert deliveries[0].outcome == "dead_lettered"
    assert deliveries[0].message_id == "raw:cases.events:0:42"
    assert handler.calls == 0
    async with sessions() as session:
        row = (await session.execute(sa.select(outbox))).one()
    assert row.topic == "cases.events.dlq"
    assert row.value == value
    assert row.headers["dlq_attempts"] == "0"


async def test_unknown_contract_version_and_bad_payload_are_dead_lettered(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    handler = Recorder()
    future = case_opened_envelope(version=99)
    broken = case_opened_envelope()
    broken_raw = json.loads(broken.to_bytes())
    broken_raw["payload"]["currency"] = "yuan"
    deliveries = await run(
        sessions,
        processor(handler),
        record(future.to_bytes(), 1),
        record(json.dumps(broken_raw).encode(), 2),
    )
    assert [d.outcome for d in deliveries] == ["dead_lettered", "dead_lettered"]
    assert handler.calls == 0
    async with sessions() as session:
        errors = (
            await session.scalars(sa.select(inbox.c.error).order_by(inbox.c.kafka_offset))
        ).all()
    assert "version 99" in (errors[0] or "")
    assert "currency" in (errors[1] or "")


async def test_types_without_a_handler_are_remembered_and_skipped(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    proc = MessageProcessor(consumer_name="test", handlers={}, max_retries=0, retry_backoff_ms=0)
    deliveries = await run(sessions, proc, record(case_opened_envelope().to_bytes()))
    assert deliveries[0].outcome == "ignored"
    assert await count_rows(engine, "outbox") == 0


class PoisonOn(Recorder):
    """Fails every time on one particular event id."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    async def __call__(self, session: AsyncSession, message: Received) -> None:
        await super().__call__(session, message)
        if str(message.envelope.event_id) == self.poison:
            raise RuntimeError("poison")


async def test_batch_fast_path_dedupes_within_and_across_batches(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    handler = Recorder()
    proc = processor(handler)
    values = [case_opened_envelope().to_bytes() for _ in range(5)]
    batch = [record(v, i) for i, v in enumerate([*values, values[0]])]
    async with sessions() as session, session.begin():
        first = await proc.process_batch(session, batch)
    async with sessions() as session, session.begin():
        again = await proc.process_batch(session, [record(v, 10 + i) for i, v in enumerate(values)])
    assert [d.outcome for d in first] == ["processed"] * 5 + ["duplicate"]
    assert [d.outcome for d in again] == ["duplicate"] * 5
    assert handler.calls == 5
    assert await count_rows(engine, "inbox") == 5
    assert await count_rows(engine, "outbox") == 5


async def test_one_poison_message_does_not_hold_up_its_batch(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    envelopes = [case_opened_envelope() for _ in range(6)]
    poison = str(envelopes[3].event_id)
    handler = PoisonOn(poison)
    async with sessions() as session, session.begin():
        deliveries = await processor(handler, retries=1).process_batch(
            session, [record(e.to_bytes(), i) for i, e in enumerate(envelopes)]
        )
    outcomes = {d.message_id: d.outcome for d in deliveries}
    assert outcomes.pop(poison) == "dead_lettered"
    assert set(outcomes.values()) == {"processed"}
    async with sessions() as session:
        topics = (await session.scalars(sa.select(outbox.c.topic))).all()
    # The failed all-at-once attempt left nothing behind: five results and one dead letter.
    assert sorted(topics) == ["cases.events.dlq"] + ["scoring.events"] * 5
