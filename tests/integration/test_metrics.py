"""`GET /metrics` on every service: HTTP traffic by route template, outbox backlog, dead
letters, consumer lag and contact decisions, against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.app import create_app as cases_app
from services.cases.settings import CasesSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import ComplianceSettings
from services.contact import service
from services.contact.app import create_app as contact_app
from services.contact.settings import ContactSettings
from services.scoring.app import create_app as scoring_app
from services.scoring.settings import ScoringSettings
from shared.bus import EventConsumer
from shared.contracts import build_envelope
from shared.messaging import outbox
from shared.metrics import record_contact_decision
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows
from tests.integration.test_contact_planning import LATE_EVENING, events

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None if the exposition does not have it."""
    return samples.get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.fixture
def contact_url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("contact")


@pytest.fixture
async def app(contact_url: str) -> AsyncIterator[FastAPI]:
    application = contact_app(ContactSettings(database_url=contact_url, enable_bus=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://contact"
    ) as http:
        yield http


def shanghai(day: int, hour: int) -> datetime:
    """A March 2026 moment given in Shanghai local time, as UTC."""
    return datetime(2026, 3, day, hour, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


async def test_contact_counts_requests_decisions_and_backlog(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    before = await scrape(client)
    contact = {"service": "contact"}
    assert value(before, "qingshou_contact_decisions_total", **contact, outcome="blocked") == 0
    assert value(before, "qingshou_outbox_backlog", **contact) == 0
    assert value(before, "qingshou_consumer_lag", **contact, topic="cases.events") is None

    # Planning at 23:30 in Shanghai: the rules refuse now, the attempt waits for 08:00.
    opened, scored = events(dpd=10)
    key = str(opened.case_id)
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(
            s,
            event=opened,
            envelope=build_envelope(
                opened, key=key, producer="cases", correlation_id="c", tenant="default"
            ),
            now=LATE_EVENING,
        )
        await service.record_case_scored(
            s,
            event=scored,
            envelope=build_envelope(
                scored, key=key, producer="scoring", correlation_id="c", tenant="default"
            ),
            now=LATE_EVENING,
        )

    base = {"debtor_id": str(uuid.uuid4()), "case_id": str(uuid.uuid4()), "channel": "call"}
    zones = {"zones": ["Asia/Shanghai"]}
    night = await client.post(
        "/v1/contact/decisions", json={**base, **zones, "at": shanghai(4, 23).isoformat()}
    )
    assert night.json()["allowed"] is False
    day = await client.post(
        "/v1/contact/decisions", json={**base, **zones, "at": shanghai(5, 10).isoformat()}
    )
    assert day.json()["allowed"] is True
    assert (await client.post("/v1/contact/decisions", json={**base, "channel": "x"})).is_error
    for _ in range(2):
        assert (await client.get(f"/v1/attempts/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    too_big = await client.post("/v1/contact/decisions", content=b"x" * 70_000)
    assert too_big.status_code == 413

    # The planned attempt is due at 08:00; a dialer asking at 23:00 gets it refused and moved,
    # one asking the next morning gets it leased.
    worklist = {"channel": "call", "dialer": "d1"}
    app.state.clock = lambda: shanghai(5, 23)
    assert (await client.get("/v1/dialer/worklist", params=worklist)).json() == []
    app.state.clock = lambda: shanghai(6, 9)
    assert len((await client.get("/v1/dialer/worklist", params=worklist)).json()) == 1

    after = await scrape(client)
    requests = "qingshou_http_requests_total"
    decisions_route = {**contact, "route": "/v1/contact/decisions"}
    assert value(after, requests, **decisions_route, method="POST", status="200") == 2
    assert value(after, requests, **decisions_route, method="POST", status="422") == 1
    assert value(after, requests, **decisions_route, method="POST", status="413") == 1
    attempt = {**contact, "method": "GET", "route": "/v1/attempts/{attempt_id}"}
    assert value(after, requests, **attempt, status="404") == 2
    assert value(after, requests, **contact, method="GET", route="unmatched", status="404") == 1
    # Templates only: no raw path (an id, a probe for /no/such/path) and never /metrics itself.
    routes = {dict(labels)["route"] for _name, labels in after if "route" in dict(labels)}
    assert routes <= {*app.openapi()["paths"], "unmatched"}, routes

    duration = "qingshou_http_request_duration_seconds"
    post = {**decisions_route, "method": "POST"}
    assert value(after, f"{duration}_count", **post) == 4
    assert value(after, f"{duration}_bucket", **post, le="+Inf") == 4
    assert (value(after, f"{duration}_sum", **post) or 0) > 0

    # Blocked: the night query, the night planning and the night release. Allowed: the day
    # query and the morning release.
    assert value(after, "qingshou_contact_decisions_total", **contact, outcome="blocked") == 3
    assert value(after, "qingshou_contact_decisions_total", **contact, outcome="allowed") == 2
    assert value(after, "qingshou_contact_blocked_total", **contact, rule_id="CN-HOURS") == 3

    # Planned and blocked events wait in the outbox (the bus is off); publishing empties it.
    engine = app.state.runtime.engine
    unpublished = await count_rows(engine, "outbox", "published_at IS NULL")
    assert unpublished == 2
    assert value(after, "qingshou_outbox_backlog", **contact) == unpublished
    async with engine.begin() as conn:
        await conn.execute(sa.update(outbox).values(published_at=datetime.now(UTC)))
    assert value(await scrape(client), "qingshou_outbox_backlog", **contact) == 0


async def test_decisions_count_only_when_their_transaction_commits(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    sessions = app.state.runtime.sessions

    async def failed_request() -> None:
        async with sessions() as s, s.begin():
            await s.execute(sa.text("SELECT 1"))
            record_contact_decision(s, allowed=False, rule_ids=["ROLLED-BACK"])
            raise RuntimeError("the request failed")

    async def isolated_message(s: AsyncSession) -> None:
        async with s.begin_nested():
            record_contact_decision(s, allowed=False, rule_ids=["SAVEPOINT"])
            raise RuntimeError("one message isolated from its batch")

    with pytest.raises(RuntimeError):
        await failed_request()
    async with sessions() as s, s.begin():
        await s.execute(sa.text("SELECT 1"))
        with pytest.raises(RuntimeError):
            await isolated_message(s)
        async with s.begin_nested():
            record_contact_decision(s, allowed=False, rule_ids=["KEPT", "KEPT"])
        record_contact_decision(s, allowed=True, rule_ids=())
        registry = app.state.runtime.metrics.registry
        allowed = {"service": "contact", "outcome": "allowed"}
        assert registry.get_sample_value("qingshou_contact_decisions_total", allowed) == 0

    samples = await scrape(client)
    blocked = "qingshou_contact_blocked_total"
    assert value(samples, blocked, service="contact", rule_id="KEPT") == 1
    assert value(samples, blocked, service="contact", rule_id="SAVEPOINT") is None
    assert value(samples, blocked, service="contact", rule_id="ROLLED-BACK") is None
    decisions = "qingshou_contact_decisions_total"
    assert value(samples, decisions, service="contact", outcome="blocked") == 1
    assert value(samples, decisions, service="contact", outcome="allowed") == 1


class FakeKafka:
    """Just what the consumer loop and the lag reading ask of an AIOKafkaConsumer."""

    def __init__(
        self, marks: dict[TopicPartition, int | None], positions: dict[TopicPartition, int]
    ):
        self.marks = marks
        self.positions = positions
        self.committed: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.marks)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.marks[tp]

    async def position(self, tp: TopicPartition) -> int:
        if tp not in self.positions:
            raise RuntimeError(f"{tp} is not assigned")
        return self.positions[tp]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)


def poison(topic: str, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"not an envelope",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=15,
        headers=(),
    )


async def test_dead_letters_and_consumer_lag(app: FastAPI, client: httpx.AsyncClient) -> None:
    consumer = app.state.runtime.consumer
    assert isinstance(consumer, EventConsumer)
    dlq = "qingshou_dlq_messages_total"
    before = await scrape(client)
    for topic in ("cases.events.dlq", "scoring.events.dlq", "contact.outcomes.dlq"):
        assert value(before, dlq, service="contact", topic=topic) == 0

    cases = TopicPartition("cases.events", 0)
    fake = FakeKafka(
        marks={
            cases: 12,
            TopicPartition("cases.events", 1): None,  # no fetch answer yet: lag unknown
            TopicPartition("scoring.events", 0): 3,  # revoked before its position was read
        },
        positions={cases: 7},
    )
    await consumer._handle_batch(
        fake, cases, [poison("cases.events", 4), poison("cases.events", 5)]
    )
    assert fake.committed == {cases: 6}
    consumer._consumer = fake
    try:
        samples = await scrape(client)
    finally:
        consumer._consumer = None
    assert value(samples, dlq, service="contact", topic="cases.events.dlq") == 2
    assert value(samples, dlq, service="contact", topic="scoring.events.dlq") == 0
    lag = "qingshou_consumer_lag"
    assert value(samples, lag, service="contact", topic="cases.events", partition="0") == 5
    assert value(samples, lag, service="contact", topic="cases.events", partition="1") is None
    assert value(samples, lag, service="contact", topic="scoring.events", partition="0") is None
    # The dead letters themselves wait in the outbox like any event.
    assert value(samples, "qingshou_outbox_backlog", service="contact") == 2


async def test_a_database_error_leaves_the_backlog_out_of_the_scrape(tmp_path: Path) -> None:
    # Never migrated: the outbox table does not exist.
    application = contact_app(
        ContactSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}", enable_bus=False
        )
    )
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            headers=auth_headers(),
            transport=httpx.ASGITransport(app=application),
            base_url="http://c",
        ) as c,
    ):
        assert (await c.get("/healthz")).status_code == 200
        samples = await scrape(c)
    assert value(samples, "qingshou_outbox_backlog", service="contact") is None
    ok = {"service": "contact", "method": "GET", "route": "/healthz", "status": "200"}
    assert value(samples, "qingshou_http_requests_total", **ok) == 1


def build(name: str, url: str, tmp: Path) -> FastAPI:
    """One service's app on a migrated database, its bus and jobs off."""
    if name == "cases":
        return cases_app(
            CasesSettings(
                database_url=url,
                enable_bus=False,
                enable_jobs=False,
                import_dir=str(tmp / "imports"),
            )
        )
    if name == "scoring":
        return scoring_app(
            ScoringSettings(
                database_url=url,
                enable_bus=False,
                enable_jobs=False,
                default_model_path=str(tmp / "no-model.json"),
            )
        )
    if name == "contact":
        return contact_app(ContactSettings(database_url=url, enable_bus=False, enable_jobs=False))
    return compliance_app(ComplianceSettings(database_url=url, enable_bus=False, enable_jobs=False))


@pytest.fixture(params=["cases", "scoring", "contact", "compliance"])
def service_app(
    request: pytest.FixtureRequest, migrated_database: MigratedDatabaseFactory, tmp_path: Path
) -> tuple[str, FastAPI]:
    # Migrations run here, outside the event loop.
    name = str(request.param)
    return name, build(name, migrated_database(name), tmp_path)


async def test_every_service_serves_metrics(service_app: tuple[str, FastAPI]) -> None:
    name, application = service_app
    assert "/metrics" not in application.openapi()["paths"]
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            headers=auth_headers(),
            transport=httpx.ASGITransport(app=application),
            base_url="http://s",
        ) as c,
    ):
        assert (await c.get("/healthz")).status_code == 200
        samples = await scrape(c)
    ok = {"service": name, "method": "GET", "route": "/healthz", "status": "200"}
    assert value(samples, "qingshou_http_requests_total", **ok) == 1
    assert value(samples, "qingshou_outbox_backlog", service=name) is not None
    deciders = {dict(labels).get("service") for n, labels in samples if "contact_dec" in n}
    assert deciders == ({"contact"} if name == "contact" else set())
