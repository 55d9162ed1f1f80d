"""Compliance per tenant, on a real database: one evidence log for the platform whose entries
each tenant reads only its own of, a re-check that never mixes tenants' knowledge, complaints,
QA, reports, exports and retention per tenant, and every route behind its scope."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.compliance import merkle
from services.compliance.app import create_app
from services.compliance.handlers import TOPICS
from services.compliance.settings import ComplianceSettings
from shared.contracts import (
    ContactPolicyChanged,
    Envelope,
    EventPayload,
    HoldKind,
    HoldPlaced,
    build_envelope,
)
from shared.contracts.events import ApiKeyCreated, ModelActivated
from shared.contracts.topics import ADMIN_EVENTS, CASES_EVENTS, SCORING_EVENTS
from shared.messaging import outbox
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.integration.test_compliance_oversight import Feed, local, opened, outcome
from tests.integration.test_message_processor import record

ACME, GLOBEX = "acme", "globex"
TODAY = local(12, 0, date(2026, 3, 10))


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("compliance")


@pytest.fixture
async def app(url: str) -> AsyncIterator[FastAPI]:
    application = create_app(ComplianceSettings(database_url=url, enable_bus=False))
    application.state.clock = lambda: TODAY
    async with application.router.lifespan_context(application):
        yield application


def client_of(app: FastAPI, tenant: str, kind: str = "all") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=auth_headers(kind=kind, tenant=tenant),
        transport=httpx.ASGITransport(app=app),
        base_url="http://compliance",
    )


@pytest.fixture
async def acme(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app, ACME) as http:
        yield http


@pytest.fixture
async def globex(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app, GLOBEX) as http:
        yield http


class TenantFeed(Feed):
    """The consumer fed whole envelopes, on any topic."""

    async def publish(self, envelope: Envelope, *, topic: str = CASES_EVENTS) -> None:
        message = dataclasses.replace(record(envelope.to_bytes(), self.offset), topic=topic)
        async with self.app.state.runtime.sessions() as s, s.begin():
            delivery = await self.processor.process(s, message)
            assert delivery.outcome == "processed", delivery
        self.offset += 1


def envelope_of(payload: EventPayload, *, tenant: str, actor: str | None = None) -> Envelope:
    return build_envelope(
        payload,
        key=str(uuid.uuid4()),
        producer="test",
        correlation_id="c",
        tenant=tenant,
        actor=actor,
    )


async def entries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit/entries", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


async def violations(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/violations", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["violations"]
    return found


async def outbox_envelopes(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    async with app.state.runtime.sessions() as s:
        values = (
            (await s.execute(sa.select(outbox.c.value).where(outbox.c.event_type == event_type)))
            .scalars()
            .all()
        )
    return [json.loads(v) for v in values]


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_each_tenant_reads_only_its_entries_but_proves_against_the_one_tree(
    app: FastAPI, acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    feed = TenantFeed(app)
    mine, theirs = opened(), opened()
    await feed.send(mine, key=mine.case_id, tenant=ACME)
    await feed.send(theirs, key=theirs.case_id, tenant=GLOBEX)
    await feed.send(outcome(mine, local(10)), key=mine.case_id, tenant=ACME)

    own = await entries(acme)
    assert [(e["seq"], e["case_key"]) for e in own] == [
        (1, str(mine.case_id)),
        (3, str(mine.case_id)),
    ]
    assert {e["envelope"]["tenant"] for e in own} == {ACME}
    assert [e["seq"] for e in await entries(globex)] == [2]
    assert await entries(acme, case_id=str(theirs.case_id)) == []

    # One tree for the platform: both tenants see the same head, of every entry.
    head = (await acme.get("/v1/audit/tree-head")).json()
    assert head == (await globex.get("/v1/audit/tree-head")).json()
    assert head["tree_size"] == 3
    proof = await acme.get("/v1/audit/proof/3")
    assert proof.status_code == 200, proof.text
    async with app.state.runtime.sessions() as s:
        body = (
            await s.execute(sa.text("SELECT body FROM audit_entries WHERE seq = 3"))
        ).scalar_one()
    assert merkle.verify_inclusion(
        leaf=merkle.leaf_hash(bytes(body)),
        index=2,
        tree_size=3,
        proof=[bytes.fromhex(h) for h in proof.json()["audit_path"]],
        expected_root=bytes.fromhex(head["root_hash"]),
    )
    assert_not_found(await globex.get("/v1/audit/proof/3"))
    assert_not_found(await acme.get("/v1/audit/proof/2", params={"tree_size": 3}))
    assert (await globex.get("/v1/audit/proof/2")).status_code == 200
    assert (await globex.get("/v1/audit/verify")).json()["ok"] is True
    consistency = await globex.get("/v1/audit/consistency", params={"first": 1, "second": 3})
    assert consistency.status_code == 200, consistency.text


async def test_the_recheck_judges_each_tenants_contacts_by_its_own_policy(
    app: FastAPI, acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    feed = TenantFeed(app)
    mine, theirs = opened(), opened()
    await feed.send(mine, key=mine.case_id, tenant=ACME)
    await feed.send(theirs, key=theirs.case_id, tenant=GLOBEX)

    def policy(quiet: list[dict[str, str]]) -> ContactPolicyChanged:
        return ContactPolicyChanged(
            version=1,  # each tenant numbers its own versions
            packs=["cn"],
            policy={"packs": ["cn"], "quiet": quiet, "caps": {}, "holidays": []},
            changed_by="officer",
            reason="lunch",
            changed_at=local(8, 0, date(2026, 3, 5)),
        )

    await feed.send(policy([]), key=uuid.uuid4(), tenant=ACME)
    await feed.send(
        policy([{"start": "12:00:00", "end": "13:30:00"}]), key=uuid.uuid4(), tenant=GLOBEX
    )
    lunch = local(12, 30, date(2026, 3, 5))
    await feed.send(outcome(mine, lunch), key=mine.case_id, tenant=ACME)
    await feed.send(outcome(theirs, lunch), key=theirs.case_id, tenant=GLOBEX)
    await feed.send(outcome(mine, local(23, 0, date(2026, 3, 6))), key=mine.case_id, tenant=ACME)

    assert [v["rule_id"] for v in await violations(acme)] == ["CN-HOURS"]
    [quiet] = await violations(globex)
    assert (quiet["rule_id"], quiet["case_id"]) == ("POLICY-QUIET", str(theirs.case_id))
    assert await violations(acme, case_id=str(theirs.case_id)) == []
    published = await outbox_envelopes(app, "violation.detected")
    assert sorted((e["tenant"], e["payload"]["rule_id"]) for e in published) == [
        (ACME, "CN-HOURS"),
        (GLOBEX, "POLICY-QUIET"),
    ]

    period = {"period_start": "2026-03-01T00:00:00Z", "period_end": "2026-03-11T00:00:00Z"}
    summary = (await acme.get("/v1/reports/summary", params=period)).json()
    assert (summary["contacts"], summary["accounts_worked"]) == (2, 1)
    assert summary["violations_by_rule"] == [{"key": "CN-HOURS", "count": 1}]
    assert (await acme.get("/v1/qa/plan", params=period)).json()["contacts_considered"] == 2
    assert (await globex.get("/v1/qa/plan", params=period)).json()["contacts_considered"] == 1

    export = (await acme.get("/v1/reports/export", params=period)).json()
    assert {c["case_id"] for c in export["contacts"]} == {str(mine.case_id)}
    assert [v["rule_id"] for v in export["violations"]] == ["CN-HOURS"]
    seqs = {e["seq"] for c in export["contacts"] for e in c["evidence"]}
    assert seqs <= {e["seq"] for e in await entries(acme)}
    foreign = await acme.get("/v1/reports/export", params={"case_id": str(theirs.case_id)})
    assert (foreign.json()["contacts"], foreign.json()["violations"]) == ([], [])

    # A QA review may only name one of the tenant's own contacts.
    [their_contact] = (await globex.get("/v1/reports/export", params=period)).json()["contacts"]
    review = {
        "subject": their_contact["subject"],
        "reviewer_kind": "qa",
        "reviewer": "qa-zhao",
        "period": "2026-03",
        "score": 90,
        "passed": True,
        "findings": [],
    }
    assert_not_found(await acme.post("/v1/qa/reviews", json=review))
    assert (await globex.post("/v1/qa/reviews", json=review)).status_code == 201


async def test_an_event_naming_another_tenants_case_is_logged_but_never_applied(
    app: FastAPI,
    acme: httpx.AsyncClient,
    globex: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = TenantFeed(app)
    mine = opened()
    await feed.send(mine, key=mine.case_id, tenant=ACME)
    await feed.send(outcome(mine, local(10)), key=mine.case_id, tenant=ACME)
    # globex's events about acme's case: a dispute hold before acme's 10:00 call, and a call
    # at 23:00. Each is processed (not dead-lettered) and kept in the log, under globex.
    hold = HoldPlaced(
        hold_id=uuid.uuid4(),
        case_id=mine.case_id,
        debtor_id=mine.debtor_id,
        kind=HoldKind.DISPUTE,
        reason="not my debt",
        placed_by="agent",
        starts_at=local(9, 30),
    )
    with caplog.at_level(logging.WARNING, logger="services.compliance.service"):
        await feed.send(hold, key=mine.case_id, at=local(9, 30), tenant=GLOBEX)
        await feed.send(outcome(mine, local(23)), key=mine.case_id, tenant=GLOBEX)
    assert [e["event_type"] for e in await entries(globex)] == [
        "case.hold_placed",
        "contact.outcome",
    ]
    assert "logged, not re-checked" in caplog.text
    assert await violations(acme) == []
    assert await violations(globex) == []
    async with app.state.runtime.sessions() as s:
        held = (await s.execute(sa.text("SELECT count(*) FROM known_holds"))).scalar_one()
        contacts = (
            (await s.execute(sa.text("SELECT tenant FROM observed_contacts"))).scalars().all()
        )
    assert (held, contacts) == (0, [ACME])
    # The same hold from acme itself does judge the call.
    await feed.send(hold, key=mine.case_id, at=local(9, 30), tenant=ACME)
    assert [v["rule_id"] for v in await violations(acme)] == ["HOLD-DISPUTE"]


async def test_complaints_are_the_tenants_own(
    app: FastAPI, acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    feed = TenantFeed(app)
    theirs = opened()
    await feed.send(theirs, key=theirs.case_id, tenant=GLOBEX)
    body = {
        "debtor_id": str(uuid.uuid4()),
        "channel": "phone",
        "category": "harassment",
        "text": "催收员一天打了十几个电话，还打给我的同事和父母，请立即停止。",
        "received_by": "agent-wang",
    }
    async with client_of(app, ACME, kind="crm") as crm:
        created = await crm.post("/v1/complaints", json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["complaint_id"]
        # Another tenant's case or debtor cannot be named.
        assert_not_found(
            await crm.post("/v1/complaints", json={**body, "case_id": str(theirs.case_id)})
        )
        assert_not_found(
            await crm.post("/v1/complaints", json={**body, "debtor_id": str(theirs.debtor_id)})
        )
    [event] = await outbox_envelopes(app, "complaint.opened")
    assert (event["tenant"], event["actor"]) == (ACME, "crm:test-crm")

    assert (await acme.get(f"/v1/complaints/{cid}")).status_code == 200
    assert_not_found(await globex.get(f"/v1/complaints/{cid}"))
    assert (await globex.get("/v1/complaints")).json()["complaints"] == []
    moved = await globex.post(
        f"/v1/complaints/{cid}/status", json={"status": "acknowledged", "changed_by": "x"}
    )
    assert_not_found(moved)
    after = (await acme.get(f"/v1/complaints/{cid}")).json()
    assert (after["status"], len(after["history"])) == ("received", 1)
    assert await outbox_envelopes(app, "complaint.status_changed") == []

    transcript = {
        "case_id": str(theirs.case_id),
        "turns": [{"speaker": "agent", "text": "不还钱就让你坐牢。"}],
    }
    assert_not_found(await acme.post("/v1/language/transcripts", json=transcript))
    assert await violations(globex) == []

    # Campaigns are found among a tenant's complaints only: four acme debtors and one globex
    # debtor sending the same text make no campaign; a fifth acme debtor does.
    template = (
        "本人于2023年在贵平台借款，现因失业无力偿还。贵司催收人员多次拨打我的电话并联系我的家人，"
        "严重影响生活，请立即停止骚扰并删除通讯录信息，否则将向监管部门投诉。"
    )

    async def complain(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        text = template.replace("2023", str(2019 + i)) + ("!" * i)
        made = await client.post(
            "/v1/complaints",
            json={**body, "debtor_id": str(uuid.uuid4()), "text": text, "category": "privacy"},
        )
        assert made.status_code == 201, made.text
        result: dict[str, Any] = made.json()
        return result

    for i in range(4):
        await complain(acme, i)
    lone = await complain(globex, 4)
    assert (lone["campaign_id"], lone["similar_complaints"]) == (None, 0)
    fifth = await complain(acme, 5)
    assert (fifth["campaign_id"] is not None, fifth["similar_complaints"]) == (True, 4)


async def test_retention_purges_only_the_callers_tenant(
    app: FastAPI, acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    feed = TenantFeed(app)
    mine, theirs = opened(), opened()
    for case, tenant in ((mine, ACME), (theirs, GLOBEX)):
        await feed.send(case, key=case.case_id, at=local(10), tenant=tenant)
        await feed.send(outcome(case, local(10)), key=case.case_id, at=local(10), tenant=tenant)
    app.state.clock = lambda: local(12, 0, date(2029, 12, 1))  # > 3 years later

    done = await acme.post("/v1/audit/purge", json={})
    assert done.status_code == 200, done.text
    assert (done.json()["entries"], done.json()["seq_ranges"]) == (2, [[1, 2]])
    own = await entries(acme)
    assert [(e["seq"], e["purged_at"] is not None) for e in own[:2]] == [(1, True), (2, True)]
    [purge] = [e for e in own if e["event_type"] == "compliance.purged"]
    assert (purge["envelope"]["tenant"], purge["envelope"]["actor"]) == (ACME, "admin:test-all")
    assert all(e["purged_at"] is None for e in await entries(globex))
    assert (await globex.get("/v1/audit/verify")).json()["ok"] is True
    assert (await globex.post("/v1/audit/purge", json={"dry_run": True})).json()["entries"] == 2


async def test_admin_and_model_events_are_logged_with_their_actor(
    app: FastAPI, acme: httpx.AsyncClient
) -> None:
    assert {ADMIN_EVENTS, SCORING_EVENTS} <= set(TOPICS)
    feed = TenantFeed(app)
    created = ApiKeyCreated(
        key_id="0123456789ab",
        client="crm-frontdesk",
        kind="crm",
        scopes=["cases:read"],
        created_by="ops-li",
        created_at=TODAY,
    )
    await feed.publish(envelope_of(created, tenant=ACME, actor="admin:ops-li"), topic=ADMIN_EVENTS)
    activated = ModelActivated(model_key="pd-2026-03", activated_at=TODAY)
    await feed.publish(envelope_of(activated, tenant=ACME), topic=SCORING_EVENTS)
    [key_entry, model_entry] = await entries(acme)
    assert (key_entry["topic"], key_entry["event_type"]) == (ADMIN_EVENTS, "admin.key_created")
    assert key_entry["envelope"]["actor"] == "admin:ops-li"
    assert key_entry["envelope"]["payload"]["client"] == "crm-frontdesk"
    assert (model_entry["topic"], model_entry["event_type"]) == (SCORING_EVENTS, "model.activated")
    assert (await acme.get("/v1/audit/verify")).json()["ok"] is True


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    example = {"seq": "1", "complaint_id": str(uuid.uuid4())}
    found = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method in operations:
            found.append((method.upper(), path.format(**example)))
    return found


async def test_every_route_needs_a_credential(app: FastAPI) -> None:
    routes = _routes(app)
    assert len(routes) == 18
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://compliance"
    ) as anonymous:
        for method, path in routes:
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
    documented = app.openapi()["paths"]["/v1/complaints"]["post"]["responses"]
    assert {"401", "403"} <= set(documented)


@pytest.mark.parametrize(
    ("kind", "method", "path"),
    [
        ("dialer", "GET", "/v1/audit/entries"),
        ("crm", "GET", "/v1/audit/tree-head"),
        ("crm", "POST", "/v1/audit/purge"),
        ("auditor", "POST", "/v1/audit/purge"),
        ("auditor", "POST", "/v1/complaints"),
        ("dialer", "GET", "/v1/complaints"),
        ("collector", "POST", "/v1/language/transcripts"),
        ("dialer", "POST", "/v1/language/templates"),
        ("auditor", "POST", "/v1/qa/reviews"),
        ("crm", "GET", "/v1/reports/export"),
    ],
)
async def test_a_kind_without_the_routes_scope_is_refused(
    app: FastAPI, kind: str, method: str, path: str
) -> None:
    async with client_of(app, ACME, kind=kind) as client:
        response = await client.request(method, path, json={})
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_each_kind_reaches_what_its_scopes_allow(app: FastAPI) -> None:
    async with client_of(app, ACME, kind="dialer") as dialer:
        review = await dialer.post(
            "/v1/language/transcripts", json={"turns": [{"speaker": "agent", "text": "您好"}]}
        )
        assert review.status_code == 200, review.text
    async with client_of(app, ACME, kind="auditor") as auditor:
        assert (await auditor.get("/v1/audit/entries")).status_code == 200
        assert (
            await auditor.post("/v1/language/templates", json={"text": "您好"})
        ).status_code == 200
    events = await outbox_envelopes(app, "transcript.reviewed")
    assert sorted((e["tenant"], e["actor"], e["payload"]["kind"]) for e in events) == [
        (ACME, "auditor:test-auditor", "template"),
        (ACME, "dialer:test-dialer", "transcript"),
    ]
