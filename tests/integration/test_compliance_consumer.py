"""Compliance's consumer path in a real database (SQLite and PostgreSQL): a polled batch is
appended at once (`EvidenceHandler.prepare`) and then judged message by message. It must come
to exactly what handling the same messages one at a time comes to, also when the re-check of
one message fails or the whole batch falls back to one message at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.compliance import service
from services.compliance.handlers import make_handlers
from shared.bus import MessageProcessor
from shared.contracts import (
    CaseOpened,
    CaseScored,
    ContactPlanned,
    Envelope,
    EventPayload,
    build_envelope,
)
from tests.conftest import MigratedDatabaseFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)


def late_evening(day: date) -> datetime:
    """23:00 in Shanghai: a forbidden hour, so each planned call is a violation."""
    return datetime.combine(day, time(23, 0), tzinfo=SHANGHAI).astimezone(UTC)


def case_events(n: int) -> list[tuple[str, Envelope]]:
    """opened, scored and planned (at 23:00 local) for each of `n` cases, case by case."""
    out: list[tuple[str, Envelope]] = []
    for i in range(n):
        case_id, debtor_id = uuid.uuid4(), uuid.uuid4()
        planned_at = late_evening(date(2026, 3, 4) + timedelta(days=i))
        payloads: list[tuple[str, str, EventPayload]] = [
            (
                "cases.events",
                "cases",
                CaseOpened(
                    case_id=case_id,
                    account_id=f"A-{i}",
                    debtor_id=debtor_id,
                    debtor_time_zone="Asia/Shanghai",
                    product="card",
                    currency="CNY",
                    principal="100",
                    interest="0",
                    fees="0",
                    amount_outstanding="100",
                    due_date=date(2026, 2, 1),
                    days_past_due=31,
                    industry_risk=10,
                    opened_at=OPENED,
                ),
            ),
            (
                "scoring.events",
                "scoring",
                CaseScored(
                    case_id=case_id,
                    score_id=uuid.uuid4(),
                    model_id="m",
                    model_version="1",
                    priority=0.5,
                    risk_tier="medium",
                    days_past_due=31,
                    amount_outstanding="100",
                    currency="CNY",
                    scored_at=OPENED,
                ),
            ),
            (
                "contact.events",
                "contact",
                ContactPlanned(
                    attempt_id=uuid.uuid4(),
                    case_id=case_id,
                    debtor_id=debtor_id,
                    channel="call",
                    template="t",
                    stage="early",
                    planned_at=planned_at,
                    local_planned_at=planned_at.astimezone(SHANGHAI).isoformat(),
                    time_zone="Asia/Shanghai",
                    window_rule_id="CN-HOURS",
                    priority=1.0,
                ),
            ),
        ]
        for topic, producer, payload in payloads:
            envelope = build_envelope(
                payload, key=str(case_id), producer=producer, correlation_id="c", tenant="default"
            )
            out.append((topic, envelope))
    return out


def records(events: Sequence[tuple[str, Envelope]]) -> list[ConsumerRecord[bytes, bytes]]:
    out: list[ConsumerRecord[bytes, bytes]] = []
    for offset, (topic, envelope) in enumerate(events):
        value = envelope.model_dump_json().encode()
        out.append(
            ConsumerRecord(
                topic=topic,
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=envelope.key.encode(),
                value=value,
                checksum=None,
                serialized_key_size=len(envelope.key),
                serialized_value_size=len(value),
                headers=(),
            )
        )
    return out


@pytest.fixture
def urls(migrated_database: MigratedDatabaseFactory) -> tuple[str, str]:
    return (
        migrated_database("compliance", "batched"),
        migrated_database("compliance", "single"),
    )


@pytest.fixture
async def engines(urls: tuple[str, str]) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    batched, single = create_async_engine(urls[0]), create_async_engine(urls[1])
    yield batched, single
    await batched.dispose()
    await single.dispose()


def processor() -> MessageProcessor:
    return MessageProcessor(
        consumer_name="compliance",
        handlers=make_handlers(pii_key=b"k" * 32),
        max_retries=1,
        retry_backoff_ms=1,
    )


async def consume(
    engine: AsyncEngine, batch: Sequence[ConsumerRecord[bytes, bytes]], *, one_by_one: bool
) -> list[str]:
    """One transaction, as the consumer runs it; returns each message's outcome."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    consumer = processor()
    async with sessions() as session, session.begin():
        if one_by_one:
            deliveries = [await consumer.process(session, r) for r in batch]
        else:
            deliveries = await consumer.process_batch(session, batch)
    return [d.outcome for d in deliveries]


async def outcome(engine: AsyncEngine) -> dict[str, Any]:
    """What the log and the re-check hold, in terms that do not depend on generated ids."""
    async with engine.connect() as conn:
        entries = (
            await conn.execute(sa.text("SELECT seq, event_id FROM audit_entries ORDER BY seq"))
        ).all()
        contacts = (
            await conn.execute(
                sa.text(
                    "SELECT subject, evidence_seq, checked_at IS NOT NULL FROM observed_contacts"
                )
            )
        ).all()
        violations = (
            await conn.execute(sa.text("SELECT subject, rule_id, evidence_seqs FROM violations"))
        ).all()
        known = (await conn.execute(sa.text("SELECT count(*) FROM known_cases"))).scalar_one()
    sessions = async_sessionmaker(engine)
    async with sessions() as session, session.begin():
        verified = await service.verify_chain(session, chunk_size=5, workers=1)
    return {
        "entries": [(seq, str(event_id)) for seq, event_id in entries],
        "contacts": sorted((s, seq, bool(checked)) for s, seq, checked in contacts),
        "violations": sorted((s, rule, str(seqs)) for s, rule, seqs in violations),
        "known_cases": known,
        "verified": verified.ok,
    }


async def test_a_batch_comes_to_what_its_messages_come_to_one_by_one(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    events = case_events(4)
    # A redelivered copy inside the batch, and one of an event logged by an earlier batch.
    batch = records([*events[:9], events[4], *events[9:]])
    await consume(engines[0], records(events[:2]), one_by_one=False)
    await consume(engines[1], records(events[:2]), one_by_one=True)
    outcomes = await consume(engines[0], batch, one_by_one=False)
    assert outcomes.count("duplicate") == 3  # two logged earlier, one copy in the batch
    await consume(engines[1], batch, one_by_one=True)
    batched, single = await outcome(engines[0]), await outcome(engines[1])
    assert batched == single
    assert [seq for seq, _ in batched["entries"]] == list(range(1, 13))
    assert [event_id for _, event_id in batched["entries"]] == [str(e.event_id) for _, e in events]
    assert len(batched["violations"]) == 4  # every planned call at 23:00
    assert batched["verified"] is True


def failing_observe(
    monkeypatch: pytest.MonkeyPatch, fails_on: uuid.UUID, error: Callable[[], Exception]
) -> None:
    observe = service.observe

    async def observe_or_fail(session: Any, *, envelope: Envelope, **kwargs: Any) -> int:
        if envelope.event_id == fails_on:
            raise error()
        return await observe(session, envelope=envelope, **kwargs)

    monkeypatch.setattr(service, "observe", observe_or_fail)


async def test_a_failed_recheck_spares_the_rest_of_the_batch(
    engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-check of the first planned call fails (its savepoint rolls back): that event
    stays logged, and every later message of the batch is still logged once and judged."""
    events = case_events(3)
    failing_observe(monkeypatch, events[2][1].event_id, lambda: RuntimeError("a bug"))
    outcomes = await consume(engines[0], records(events), one_by_one=False)
    assert outcomes == ["processed"] * 9
    held = await outcome(engines[0])
    assert [event_id for _, event_id in held["entries"]] == [str(e.event_id) for _, e in events]
    assert len(held["contacts"]) == 2  # the second and third planned calls
    assert len(held["violations"]) == 2
    assert held["verified"] is True


async def test_a_failed_batch_is_logged_message_by_message_exactly_once(
    engines: tuple[AsyncEngine, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error in one message's re-check fails the batch: its savepoint (and what
    `prepare` appended) rolls back, the messages are handled one by one, the bad one is
    dead-lettered, and every other event is appended exactly once, in order."""
    events = case_events(3)
    bad = events[5][1]
    failing_observe(monkeypatch, bad.event_id, lambda: SQLAlchemyError("constraint"))
    outcomes = await consume(engines[0], records(events), one_by_one=False)
    assert outcomes == ["processed"] * 5 + ["dead_lettered"] + ["processed"] * 3
    held = await outcome(engines[0])
    expected = [str(e.event_id) for _, e in events if e is not bad]
    assert held["entries"] == list(enumerate(expected, start=1))
    assert len(held["violations"]) == 2
    assert held["verified"] is True
