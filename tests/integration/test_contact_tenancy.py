"""Contact keeps tenants apart: each tenant plans, reads, leases and decides on its own cases
under its own policy and statistics; another tenant's records are unknown to the API and
events naming them are dead-lettered; every route needs a credential with its scope."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.contact import service
from services.contact.app import create_app
from services.contact.handlers import make_handlers
from services.contact.models import ContactAttempt, ContactCase, ContactOutcomeRecord
from services.contact.settings import ContactSettings
from shared.bus import MessageProcessor
from shared.contracts import (
    CaseClosed,
    CaseOpened,
    CaseScored,
    ContactOutcome,
    DebtorPreferencesChanged,
    Envelope,
    EventPayload,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    build_envelope,
)
from shared.messaging import inbox, outbox
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows
from tests.integration.test_contact_planning import LATE_EVENING, events
from tests.integration.test_message_processor import record

SHANGHAI = ZoneInfo("Asia/Shanghai")
LUNCH_POLICY = {
    "packs": ["cn"],
    "window_start": "09:00",
    "quiet": [{"start": "12:00", "end": "13:30"}],
    "changed_by": "officer-li",
    "reason": "acme's lunch quiet hours",
}


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("contact")  # outside the event loop


@pytest.fixture
async def app(url: str) -> AsyncIterator[FastAPI]:
    application = create_app(ContactSettings(database_url=url, enable_bus=False))
    async with application.router.lifespan_context(application):
        yield application


def client(app: FastAPI, *, kind: str = "all", tenant: str = "default") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=auth_headers(kind=kind, tenant=tenant),
        transport=httpx.ASGITransport(app=app),
        base_url="http://c",
    )


def message(payload: EventPayload, *, tenant: str, key: uuid.UUID) -> bytes:
    return build_envelope(
        payload, key=str(key), producer="cases", correlation_id="c", tenant=tenant
    ).to_bytes()


async def deliver(app: FastAPI, *values: bytes) -> list[str]:
    """Run messages through contact's consumer; their outcomes (processed, dead_lettered)."""
    processor = MessageProcessor(
        consumer_name="contact", handlers=make_handlers(("cn",)), max_retries=0, retry_backoff_ms=0
    )
    async with app.state.runtime.sessions() as s, s.begin():
        return [(await processor.process(s, record(v, i))).outcome for i, v in enumerate(values)]


async def open_case(app: FastAPI, tenant: str) -> tuple[CaseOpened, CaseScored]:
    """A case of `tenant` opened and scored at 23:30 in Shanghai: its first attempt is planned
    for the next morning."""
    opened, scored = events(dpd=10)

    def env(payload: EventPayload) -> Envelope:
        return build_envelope(
            payload, key=str(opened.case_id), producer="cases", correlation_id="c", tenant=tenant
        )

    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env(opened), now=LATE_EVENING)
        await service.record_case_scored(s, event=scored, envelope=env(scored), now=LATE_EVENING)
    return opened, scored


async def attempts_of(app: FastAPI, case_id: uuid.UUID) -> list[ContactAttempt]:
    async with app.state.runtime.sessions() as s:
        return list(
            (
                await s.scalars(
                    sa.select(ContactAttempt)
                    .where(ContactAttempt.case_id == case_id)
                    .order_by(ContactAttempt.attempt_no)
                )
            ).all()
        )


async def published(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    async with app.state.runtime.sessions() as s:
        values = (
            await s.scalars(
                sa.select(outbox.c.value)
                .where(outbox.c.event_type == event_type)
                .order_by(outbox.c.id)
            )
        ).all()
    return [json.loads(v) for v in values]


async def dead_letter_errors(app: FastAPI) -> list[str]:
    async with app.state.runtime.sessions() as s:
        rows = await s.scalars(sa.select(inbox.c.error).where(inbox.c.outcome == "dead_lettered"))
        return [str(e) for e in rows.all()]


def outcome_body(case_id: uuid.UUID, attempt_id: uuid.UUID | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "outcome_id": str(uuid.uuid4()),
        "case_id": str(case_id),
        "channel": "call",
        "result": "no_answer",
        "occurred_at": "2026-03-05T01:00:00Z",  # 09:00 in Shanghai
        "dialer": "d",
    }
    if attempt_id is not None:
        body["attempt_id"] = str(attempt_id)
    return body


async def test_each_tenant_plans_and_reads_only_its_own_cases(app: FastAPI) -> None:
    acme_case, _ = await open_case(app, "acme")
    globex_case, _ = await open_case(app, "globex")
    [acme_attempt] = await attempts_of(app, acme_case.case_id)
    [globex_attempt] = await attempts_of(app, globex_case.case_id)
    assert (acme_attempt.tenant, globex_attempt.tenant) == ("acme", "globex")
    engine = app.state.runtime.engine
    assert await count_rows(engine, "contact_cases", "tenant = 'acme'") == 1
    planned = {
        e["payload"]["case_id"]: e["tenant"] for e in await published(app, "contact.planned")
    }
    assert planned == {str(acme_case.case_id): "acme", str(globex_case.case_id): "globex"}
    # Through the consumer, records take the envelope's tenant.
    opened, scored = events(dpd=10)
    stream = [message(p, tenant="globex", key=opened.case_id) for p in (opened, scored)]
    assert await deliver(app, *stream) == ["processed", "processed"]
    [consumed] = await attempts_of(app, opened.case_id)
    assert consumed.tenant == "globex"
    assert await count_rows(engine, "contact_cases", "tenant = 'globex'") == 2

    async with (
        client(app, tenant="acme") as acme,
        client(app, tenant="globex") as globex,
        client(app) as default,
    ):
        own = await acme.get(f"/v1/cases/{acme_case.case_id}/attempts")
        assert [a["id"] for a in own.json()["attempts"]] == [str(acme_attempt.id)]
        assert (await acme.get(f"/v1/attempts/{acme_attempt.id}")).status_code == 200
        assert (await globex.get(f"/v1/attempts/{globex_attempt.id}")).status_code == 200
        missing = await acme.get(f"/v1/attempts/{uuid.uuid4()}")
        for other in (globex, default):
            theirs = await other.get(f"/v1/cases/{acme_case.case_id}/attempts")
            assert theirs.status_code == 404
            assert theirs.json()["detail"] == f"contact has no case {acme_case.case_id}"
            by_id = await other.get(f"/v1/attempts/{acme_attempt.id}")
            assert by_id.status_code == 404
            # Exactly what an id that exists nowhere gets.
            assert by_id.json()["type"] == missing.json()["type"]
        assert (await acme.get(f"/v1/attempts/{globex_attempt.id}")).status_code == 404


async def test_the_worklist_leases_only_the_callers_tenants_attempts(app: FastAPI) -> None:
    acme_case, _ = await open_case(app, "acme")
    globex_case, _ = await open_case(app, "globex")
    app.state.clock = lambda: datetime(2026, 3, 5, 1, 0, tzinfo=UTC)  # 09:00: both due
    params: dict[str, str | int] = {"channel": "call", "dialer": "d", "limit": 10}
    async with client(app, kind="dialer", tenant="acme") as acme:
        leased = (await acme.get("/v1/dialer/worklist", params=params)).json()
        assert [a["case_id"] for a in leased] == [str(acme_case.case_id)]
        assert (await acme.get("/v1/dialer/worklist", params=params)).json() == []
    [globex_attempt] = await attempts_of(app, globex_case.case_id)
    assert globex_attempt.status == "planned"  # untouched by acme's dialer
    async with client(app, kind="dialer", tenant="globex") as globex:
        leased = (await globex.get("/v1/dialer/worklist", params=params)).json()
        assert [a["case_id"] for a in leased] == [str(globex_case.case_id)]


async def test_outcomes_for_another_tenants_attempt_are_refused(app: FastAPI) -> None:
    acme_case, _ = await open_case(app, "acme")
    globex_case, _ = await open_case(app, "globex")
    [acme_attempt] = await attempts_of(app, acme_case.case_id)
    [globex_attempt] = await attempts_of(app, globex_case.case_id)
    foreign = outcome_body(acme_case.case_id, acme_attempt.id)
    async with client(app, kind="dialer", tenant="globex") as globex:
        refused = await globex.post("/v1/contact/outcomes", json=foreign)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == f"no contact attempt {acme_attempt.id}"
        case_only = await globex.post("/v1/contact/outcomes", json=outcome_body(acme_case.case_id))
        assert case_only.status_code == 404
    on_topic = ContactOutcome.model_validate(foreign)
    assert await deliver(app, message(on_topic, tenant="globex", key=acme_case.case_id)) == [
        "dead_lettered"
    ]
    [error] = await dead_letter_errors(app)
    assert "PermanentMessageError" in error
    assert "another tenant" in error
    engine = app.state.runtime.engine
    assert await count_rows(engine, "contact_outcomes") == 0
    assert [a.status for a in await attempts_of(app, acme_case.case_id)] == ["planned"]
    assert await published(app, "contact.outcome_recorded") == []

    # The owner's dialer reports it; the outcome id is a per-tenant idempotency key, so globex
    # reusing it for its own attempt is a new outcome, not a duplicate of acme's.
    async with client(app, kind="dialer", tenant="acme") as acme:
        accepted = await acme.post("/v1/contact/outcomes", json=foreign)
        assert (accepted.status_code, accepted.json()["duplicate"]) == (201, False)
        again = await acme.post("/v1/contact/outcomes", json=foreign)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
    reused = {**foreign, "case_id": str(globex_case.case_id), "attempt_id": str(globex_attempt.id)}
    async with client(app, kind="dialer", tenant="globex") as globex:
        own = await globex.post("/v1/contact/outcomes", json=reused)
        assert (own.status_code, own.json()["duplicate"]) == (201, False)
    assert await count_rows(engine, "contact_outcomes", "tenant = 'acme'") == 1
    assert await count_rows(engine, "contact_outcomes", "tenant = 'globex'") == 1
    recorded = await published(app, "contact.outcome_recorded")
    assert [(e["tenant"], e["actor"]) for e in recorded] == [
        ("acme", "dialer:test-dialer"),
        ("globex", "dialer:test-dialer"),
    ]
    # A no-answer plans the retry in the attempt's own tenant.
    retries = [(a.tenant, a.attempt_no) for a in await attempts_of(app, acme_case.case_id)]
    assert retries == [("acme", 1), ("acme", 2)]


async def test_case_events_naming_another_tenants_records_are_dead_lettered(
    app: FastAPI,
) -> None:
    opened, scored = await open_case(app, "acme")
    case_id, debtor_id = opened.case_id, opened.debtor_id
    hold_id = uuid.uuid4()
    hold = HoldPlaced(
        hold_id=hold_id,
        case_id=case_id,
        debtor_id=debtor_id,
        kind=HoldKind.CEASE,
        reason="debtor asked",
        placed_by="agent",
        starts_at=LATE_EVENING,
    )
    foreign = [
        opened,
        scored,
        hold,
        HoldPlaced(**{**hold.model_dump(), "case_id": uuid.uuid4()}),  # the debtor alone
        DebtorPreferencesChanged(
            debtor_id=debtor_id,
            opted_out_channels=["call"],
            consents=[],
            changed_by="collector:li",
            reason="asked",
            changed_at=LATE_EVENING,
        ),
        CaseClosed(
            case_id=case_id,
            account_id="A",
            closure="settled",
            amount_outstanding="0",
            closed_by="agent",
            closed_at=LATE_EVENING,
        ),
    ]
    outcomes = await deliver(app, *(message(p, tenant="globex", key=case_id) for p in foreign))
    assert outcomes == ["dead_lettered"] * len(foreign)
    errors = await dead_letter_errors(app)
    assert len(errors) == len(foreign)
    assert all("of tenant 'globex' names a record of another tenant" in e for e in errors)
    engine = app.state.runtime.engine
    for table in ("contact_holds", "contact_preferences"):
        assert await count_rows(engine, table) == 0, table
    assert await count_rows(engine, "contact_cases", "tenant = 'globex'") == 0
    assert [a.status for a in await attempts_of(app, case_id)] == ["planned"]
    assert await published(app, "contact.cancelled") == []

    # acme's own hold applies; globex cannot release it.
    assert await deliver(app, message(hold, tenant="acme", key=case_id)) == ["processed"]
    release = HoldReleased(
        hold_id=hold_id, case_id=case_id, released_by="agent", released_at=LATE_EVENING
    )
    assert await deliver(app, message(release, tenant="globex", key=case_id)) == ["dead_lettered"]
    assert await count_rows(engine, "contact_holds", "released_at IS NULL") == 1
    assert [a.status for a in await attempts_of(app, case_id)] == ["cancelled"]
    [cancelled] = await published(app, "contact.cancelled")
    assert cancelled["tenant"] == "acme"


async def test_the_policy_is_per_tenant_and_governs_its_plans_and_decisions(
    app: FastAPI,
) -> None:
    async with client(app, kind="admin", tenant="acme") as acme_admin:
        first = await acme_admin.put("/v1/contact/policy", json=LUNCH_POLICY)
        assert (first.status_code, first.json()["version"]) == (200, 1)
        second = await acme_admin.put(
            "/v1/contact/policy", json={**LUNCH_POLICY, "reason": "second version"}
        )
        assert second.json()["version"] == 2
    async with client(app, kind="admin", tenant="globex") as globex_admin:
        assert (await globex_admin.get("/v1/contact/policy")).json()["version"] == 0
        own = await globex_admin.put(
            "/v1/contact/policy",
            json={"packs": ["cn"], "changed_by": "ops", "reason": "defaults, on record"},
        )
        assert own.json()["version"] == 1  # its own sequence
    async with client(app, kind="auditor", tenant="acme") as acme_auditor:
        in_force = (await acme_auditor.get("/v1/contact/policy")).json()
        assert (in_force["version"], in_force["reason"]) == (2, "second version")
    changed = await published(app, "contact.policy_changed")
    assert [(e["tenant"], e["actor"], e["payload"]["version"]) for e in changed] == [
        ("acme", "admin:test-admin", 1),
        ("acme", "admin:test-admin", 2),
        ("globex", "admin:test-admin", 1),
    ]

    # Planning after 23:30: acme's window opens at 09:00, the default (globex's) at 08:00.
    acme_case, _ = await open_case(app, "acme")
    globex_case, _ = await open_case(app, "globex")
    [acme_attempt] = await attempts_of(app, acme_case.case_id)
    [globex_attempt] = await attempts_of(app, globex_case.case_id)
    assert acme_attempt.planned_at.astimezone(SHANGHAI).time() == time(9, 0)
    assert globex_attempt.planned_at.astimezone(SHANGHAI).time() == time(8, 0)

    lunch = {"channel": "sms", "at": "2026-03-06T04:15:00Z", "zones": ["Asia/Shanghai"]}
    for tenant, case, objections in (
        ("acme", acme_case, ["POLICY-QUIET"]),
        ("globex", globex_case, []),
    ):
        async with client(app, kind="dialer", tenant=tenant) as dialer:
            decided = await dialer.post(
                "/v1/contact/decisions",
                json={**lunch, "debtor_id": str(case.debtor_id), "case_id": str(case.case_id)},
            )
            assert [o["rule_id"] for o in decided.json()["objections"]] == objections, tenant


async def test_decisions_and_simulations_see_only_the_tenants_history(app: FastAPI) -> None:
    acme_case, _ = await open_case(app, "acme")
    async with client(app, tenant="acme") as acme:
        for hour in (1, 2, 3):  # three connected calls on 5 March: the day's cap is reached
            body = {**outcome_body(acme_case.case_id), "occurred_at": f"2026-03-05T0{hour}:00:00Z"}
            reported = await acme.post(
                "/v1/contact/outcomes", json={**body, "result": "right_party_contact"}
            )
            assert reported.status_code == 201
    decision = {
        "debtor_id": str(acme_case.debtor_id),
        "case_id": str(acme_case.case_id),
        "channel": "call",
        "at": "2026-03-05T06:00:00Z",
    }
    async with client(app, tenant="acme") as acme, client(app, tenant="globex") as globex:
        capped = await acme.post("/v1/contact/decisions", json=decision)
        assert [o["rule_id"] for o in capped.json()["objections"]] == ["CN-CALLS-DAY"]
        # Without zones, the case must be known: acme's is not globex's.
        unknown = await globex.post("/v1/contact/decisions", json=decision)
        assert unknown.status_code == 404
        # With zones, the same ids are just a debtor globex has no history for.
        fresh = await globex.post(
            "/v1/contact/decisions", json={**decision, "zones": ["Asia/Shanghai"]}
        )
        assert (fresh.json()["allowed"], fresh.json()["objections"]) == (True, [])
        policy = {**LUNCH_POLICY, "caps": {"CN-CALLS-DAY": 2}}
        mine = (await acme.post("/v1/contact/simulate", json=policy)).json()
        theirs = (await globex.post("/v1/contact/simulate", json=policy)).json()
        assert mine["attempts_replayed"] == 3
        assert mine["by_rule"] == {"CN-CALLS-DAY": 1}
        assert theirs["attempts_replayed"] == 0
    assert await published(app, "contact.policy_changed") == []  # a what-if stores nothing


async def test_answer_rates_are_learned_per_tenant(app: FastAPI) -> None:
    prefer = {"packs": ["cn"], "prefer_answer_hours": True, "changed_by": "o", "reason": "answers"}
    for tenant in ("acme", "globex"):
        async with client(app, kind="admin", tenant=tenant) as admin:
            assert (await admin.put("/v1/contact/policy", json=prefer)).status_code == 200
    # acme's debtors in Shanghai (same tier and DPD bucket) answer at 20:00 and never at 10:00.
    past_case = ContactCase(
        case_id=uuid.uuid4(),
        tenant="acme",
        debtor_id=uuid.uuid4(),
        time_zone="Asia/Shanghai",
        days_past_due=10,
        priority=1.0,
        risk_tier="low",
        updated_at=LATE_EVENING,
    )
    history = [
        ContactOutcomeRecord(
            tenant="acme",
            outcome_id=uuid.uuid4(),
            case_id=past_case.case_id,
            debtor_id=past_case.debtor_id,
            channel="call",
            result="right_party_contact" if hour == 20 else "no_answer",
            occurred_at=datetime.combine(
                date(2026, 2, 10) + timedelta(days=day), time(hour), tzinfo=SHANGHAI
            ).astimezone(UTC),
            automated=False,
            dialer="d",
            flags=[],
            details={},
            received_at=LATE_EVENING,
        )
        for day in range(12)
        for hour in (10, 20)
    ]
    async with app.state.runtime.sessions() as s, s.begin():
        s.add(past_case)
        s.add_all(history)
    acme_case, _ = await open_case(app, "acme")
    globex_case, _ = await open_case(app, "globex")
    [acme_attempt] = await attempts_of(app, acme_case.case_id)
    [globex_attempt] = await attempts_of(app, globex_case.case_id)
    assert acme_attempt.planned_at.astimezone(SHANGHAI).time() == time(20, 0)
    # globex learns nothing from acme's debtors: the prior's best hour, as with no history.
    assert globex_attempt.planned_at.astimezone(SHANGHAI).time() == time(10, 0)


async def test_every_route_needs_a_credential_and_its_scope(app: FastAPI) -> None:
    case_id = uuid.uuid4()
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/cases/{case_id}/attempts", None),
        ("GET", f"/v1/attempts/{uuid.uuid4()}", None),
        ("POST", "/v1/contact/decisions", None),
        ("POST", "/v1/contact/outcomes", None),
        ("GET", "/v1/dialer/worklist?channel=call&dialer=d", None),
        ("GET", "/v1/contact/policy", None),
        ("PUT", "/v1/contact/policy", None),
        ("POST", "/v1/contact/simulate", None),
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as anonymous:
        for method, path, _ in routes:
            refused = await anonymous.request(method, path, json={})
            assert refused.status_code == 401, (method, path)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["www-authenticate"].startswith("Bearer")
    lacking = [
        ("dialer", "GET", f"/v1/cases/{case_id}/attempts"),
        ("dialer", "GET", f"/v1/attempts/{uuid.uuid4()}"),
        ("auditor", "POST", "/v1/contact/decisions"),
        ("crm", "POST", "/v1/contact/outcomes"),
        ("collector", "GET", "/v1/dialer/worklist?channel=call&dialer=d"),
        ("dialer", "GET", "/v1/contact/policy"),
        ("auditor", "PUT", "/v1/contact/policy"),
        ("crm", "POST", "/v1/contact/simulate"),
    ]
    for kind, method, path in lacking:
        async with client(app, kind=kind, tenant="acme") as c:
            forbidden = await c.request(method, path, json=LUNCH_POLICY)
            assert forbidden.status_code == 403, (kind, method, path)
            assert forbidden.headers["content-type"] == "application/problem+json"
    # The kinds that hold the scope get through (past authorization, to the route itself).
    async with client(app, kind="auditor", tenant="acme") as auditor:
        simulated = await auditor.post("/v1/contact/simulate", json=LUNCH_POLICY)
        assert simulated.status_code == 200, simulated.text
    async with client(app, kind="crm", tenant="acme") as crm:
        assert (await crm.get(f"/v1/cases/{case_id}/attempts")).status_code == 404
