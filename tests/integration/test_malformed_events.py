"""Malformed events on every topic a service consumes never crash its consumer: each service's
own handlers, behind its own processor, on its own (real) database, dead-letter garbage bytes,
half envelopes, future contract versions and payloads that break their contract, and go on to
the next message."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from services.cases.app import create_app as cases_app
from services.cases.settings import CasesSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import ComplianceSettings
from services.contact.app import create_app as contact_app
from services.contact.settings import ContactSettings
from services.scoring.app import create_app as scoring_app
from services.scoring.settings import ScoringSettings
from shared.bus import MessageProcessor
from shared.contracts.events import REGISTRY
from shared.messaging import outbox
from tests.conftest import MigratedDatabaseFactory

FACTORIES: dict[str, Callable[[str], FastAPI]] = {
    "cases": lambda url: cases_app(CasesSettings(database_url=url, enable_bus=False)),
    "scoring": lambda url: scoring_app(ScoringSettings(database_url=url, enable_bus=False)),
    "contact": lambda url: contact_app(ContactSettings(database_url=url, enable_bus=False)),
    "compliance": lambda url: compliance_app(
        ComplianceSettings(database_url=url, enable_bus=False)
    ),
}


@pytest.fixture(params=sorted(FACTORIES))
def service_db(
    request: pytest.FixtureRequest, migrated_database: MigratedDatabaseFactory
) -> tuple[str, str]:
    name = str(request.param)
    return name, migrated_database(name)


@pytest.fixture
async def service_app(service_db: tuple[str, str]) -> AsyncIterator[FastAPI]:
    name, url = service_db
    app = FACTORIES[name](url)
    yield app
    await app.state.runtime.engine.dispose()


def record(topic: str, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def envelope(event_type: str, version: int, payload: object, tenant: str = "default") -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type,
            "version": version,
            "occurred_at": "2026-11-30T10:00:00+00:00",
            "producer": "elsewhere",
            "key": "k",
            "correlation_id": "c",
            "tenant": tenant,
            "payload": payload,
        }
    ).encode()


def malformed(event_type: str) -> dict[str, tuple[bytes, bool]]:
    """Every way a message of `event_type` can be broken before any handler logic runs:
    name -> (bytes, whether the envelope itself is broken rather than only its payload)."""
    version = max(v for t, v in REGISTRY if t == event_type)
    return {
        "garbage": (b"\xff\x00not json at all", True),
        "not an object": (b"[1, 2, 3]", True),
        "half envelope": (json.dumps({"type": event_type, "version": version}).encode(), True),
        "payload not an object": (envelope(event_type, version, "text"), True),
        "bad tenant": (envelope(event_type, version, {}, tenant="Not A Tenant!"), True),
        "future version": (envelope(event_type, version + 98, {}), False),
        "empty payload": (envelope(event_type, version, {}), False),
        "huge number": (envelope(event_type, version, {"case_id": 10**400}), False),
    }


async def test_every_consumed_type_survives_every_malformation(service_app: FastAPI) -> None:
    runtime = service_app.state.runtime
    consumer = runtime.consumer
    assert consumer is not None
    processor: MessageProcessor = consumer._processor
    # "*" is compliance's evidence log, which keeps every well-formed envelope as evidence, even
    # one whose payload it cannot read; only what is not an envelope at all is dead-lettered.
    keeps_everything = "*" in processor.handlers
    handled = sorted({t for t, _ in REGISTRY} if keeps_everything else processor.handlers)
    assert handled, "the service consumes nothing?"
    topic = consumer.topics[0]
    offset = 0
    expected_dead = 0
    for event_type in handled:
        for how, (value, broken_envelope) in malformed(event_type).items():
            offset += 1
            async with runtime.sessions() as session, session.begin():
                delivery = await processor.process(session, record(topic, offset, value))
            dead = broken_envelope or not keeps_everything
            wanted = "dead_lettered" if dead else "processed"
            assert delivery.outcome == wanted, (event_type, how, delivery)
            expected_dead += dead
    # The consumer's database took every dead letter, with its error, and nothing else.
    async with runtime.sessions() as session:
        dead_letters = (
            await session.scalars(sa.select(outbox.c.headers).where(outbox.c.topic.like("%.dlq")))
        ).all()
    assert len(dead_letters) == expected_dead
    assert all(h.get("dlq_error") for h in dead_letters), dead_letters[:3]
