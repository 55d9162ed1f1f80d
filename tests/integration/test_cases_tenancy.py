"""Tenancy and scoped access in the cases service, on SQLite and PostgreSQL: each tenant sees
and changes only its own records, a collector's own credential only its own cases, every route
asks for its scope, and consumed events naming another tenant's records are dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.cases import api, service
from services.cases.handlers import make_handlers
from shared.auth import ClientKind, Scope
from shared.bus import PermanentMessageError, Received
from shared.contracts import (
    CaseScored,
    ComplaintCategory,
    ComplaintOpened,
    ContactOutcomeRecorded,
    EventPayload,
    OutcomeResult,
    RiskTier,
    ScoreOverridden,
    Severity,
    ViolationDetected,
    build_envelope,
    utc_now,
)
from tests.auth_support import headers, store
from tests.integration.cases_support import (
    Clock,
    case_body,
    cases_app,
    cases_db,
    clock,
    events,
    open_case,
    problem,
    snapshot,
)

__all__ = ["cases_app", "cases_db", "clock"]  # fixtures

ACME, GLOBEX = "acme", "globex"


def client(app: FastAPI, auth: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=auth, transport=httpx.ASGITransport(app=app), base_url="http://cases"
    )


@pytest.fixture
async def acme(cases_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(cases_app, headers(tenant=ACME)) as http:
        yield http


@pytest.fixture
async def globex(cases_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(cases_app, headers(tenant=GLOBEX)) as http:
        yield http


def key(*, kind: ClientKind, tenant: str, **extra: Any) -> dict[str, str]:
    """A fresh API key (the apps re-read the key file when it changes)."""
    token, _ = store.create(
        client=f"{kind.value}-{uuid.uuid4().hex[:6]}",
        kind=kind,
        tenant=tenant,
        now=utc_now(),
        expires_in=timedelta(days=1),
        **extra,
    )
    return {"Authorization": f"Bearer {token}"}


# --- each tenant its own records ------------------------------------------------------------


async def test_tenants_share_business_keys_but_see_only_their_own_records(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, clock: Clock
) -> None:
    debtor = {"name": "Li Lei", "external_ref": "CUST-1", "time_zone": "Asia/Shanghai",
              "phone": "+8613912345678"}  # fmt: skip
    mine = await open_case(acme, clock, account_id="LN-1", debtor=debtor)
    theirs = await open_case(globex, clock, account_id="LN-1", debtor=debtor)
    # Same account and customer numbers, two creditors: two cases, two debtors.
    assert mine["id"] != theirs["id"]
    assert mine["debtor"]["id"] != theirs["debtor"]["id"]
    # A second open case for the account is still refused within the tenant.
    problem(await acme.post("/v1/cases", json=case_body(clock, account_id="LN-1")), 409)

    for http, own, other in ((acme, mine, theirs), (globex, theirs, mine)):
        listed = (await http.get("/v1/cases")).json()["items"]
        assert [c["id"] for c in listed] == [own["id"]]
        by_account = (await http.get("/v1/cases", params={"account_id": "LN-1"})).json()
        assert [c["id"] for c in by_account["items"]] == [own["id"]]
        by_ref = (await http.get("/v1/cases", params={"debtor_ref": "CUST-1"})).json()
        assert [c["id"] for c in by_ref["items"]] == [own["id"]]
        assert (await http.get(f"/v1/cases/{own['id']}")).status_code == 200
        for path in ("", "/timeline", "/holds", "/payments", "/promises"):
            problem(await http.get(f"/v1/cases/{other['id']}{path}"), 404)
        as_of = clock.today.isoformat()
        problem(await http.get(f"/v1/cases/{other['id']}", params={"as_of": as_of}), 404)
        problem(await http.get(f"/v1/debtors/{other['debtor']['id']}"), 404)
        assert (await http.get(f"/v1/debtors/{own['debtor']['id']}")).status_code == 200


async def test_writes_to_another_tenants_case_are_404_and_change_nothing(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(acme, clock)
    url = f"/v1/cases/{case['id']}"
    hold = await acme.post(
        f"{url}/holds", json={"kind": "hardship", "reason": "lost job", "placed_by": "a"}
    )
    assert hold.status_code == 201
    tomorrow = (clock.today + timedelta(days=1)).isoformat()
    # Each body is valid: the owner's identical request (sent afterwards) succeeds.
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{url}/notes", {"author": "x", "text": "hello"}),
        ("POST", f"{url}/stage", {"stage": "legal", "reason": "r", "changed_by": "x"}),
        ("POST", f"{url}/holds/{hold.json()['id']}/release", {"released_by": "x"}),
        ("POST", f"{url}/holds", {"kind": "dispute", "reason": "r", "placed_by": "x"}),
        ("POST", f"{url}/payments", {"external_payment_id": "P-1", "amount": "10.00",
                                      "currency": "CNY", "paid_on": clock.today.isoformat()}),
        ("POST", f"{url}/promises", {"amount": "100.00", "promised_date": tomorrow,
                                      "channel": "call", "taken_by": "x"}),
        ("POST", f"{url}/plans", {"kind": "installments", "shape": "3", "first_due_date": tomorrow,
                                   "approved_by": "x", "approver_role": "supervisor"}),
        ("PUT", f"/v1/debtors/{case['debtor']['id']}/preferences",
         {"opted_out_channels": ["sms"], "consents": [], "changed_by": "x", "reason": "asked"}),
        ("POST", f"{url}/close", {"closure": "written_off", "reason": "r", "closed_by": "x"}),
    ]  # fmt: skip
    for method, path, body in writes:
        before = await snapshot(cases_app)
        problem(await globex.request(method, path, json=body), 404)
        assert await snapshot(cases_app) == before, path
        done = await acme.request(method, path, json=body)
        assert done.status_code in (200, 201), (path, done.text)


async def test_ids_of_another_tenant_cannot_be_referenced_in_a_body(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, clock: Clock
) -> None:
    acme_team = (await acme.post("/v1/teams", json={"name": "north"})).json()
    # Names are unique per tenant only.
    globex_team = await globex.post("/v1/teams", json={"name": "north"})
    assert globex_team.status_code == 201
    problem(await globex.post("/v1/teams", json={"name": "north"}), 409)
    problem(
        await globex.post("/v1/collectors", json={"name": "c", "team_id": acme_team["id"],
                                                  "capacity": 5}),
        422,
    )  # fmt: skip
    problem(await globex.post("/v1/queues", json={"name": "q", "team_id": acme_team["id"]}), 422)
    acme_collector = (
        await acme.post("/v1/collectors", json={"name": "c", "team_id": acme_team["id"],
                                                "capacity": 5})
    ).json()  # fmt: skip
    acme_agency = (await acme.post("/v1/agencies", json={"name": "Far East"})).json()
    acme_queue = (await acme.post("/v1/queues", json={"name": "all"})).json()
    assert (await globex.post("/v1/agencies", json={"name": "Far East"})).status_code == 201

    case = await open_case(globex, clock)
    assign = {"collector_id": acme_collector["id"], "assigned_by": "x"}
    problem(await globex.post(f"/v1/cases/{case['id']}/assign", json=assign), 422)
    placement = {"agency_id": acme_agency["id"], "placed_by": "x"}
    problem(await globex.post(f"/v1/cases/{case['id']}/placement", json=placement), 422)
    problem(
        await globex.post(f"/v1/queues/{acme_queue['id']}/next",
                          json={"collector_id": acme_collector["id"]}),
        404,
    )  # fmt: skip
    for path in ("/v1/teams", "/v1/collectors", "/v1/agencies", "/v1/queues"):
        ids = {item["id"] for item in (await globex.get(path)).json()}
        foreign = {acme_team["id"], acme_collector["id"], acme_agency["id"], acme_queue["id"]}
        assert ids.isdisjoint(foreign), path
    # The same references work inside their own tenant.
    own = await open_case(acme, clock)
    assigned = await acme.post(f"/v1/cases/{own['id']}/assign", json=assign)
    assert assigned.status_code == 200, assigned.text


async def test_idempotency_keys_and_payment_ids_are_per_tenant(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, clock: Clock
) -> None:
    body = case_body(clock)
    first = await acme.post("/v1/cases", json=body, headers={"Idempotency-Key": "K-1"})
    other = await globex.post("/v1/cases", json=body, headers={"Idempotency-Key": "K-1"})
    assert (first.status_code, other.status_code) == (201, 201)
    assert "idempotent-replayed" not in other.headers
    assert first.json()["id"] != other.json()["id"]
    replay = await acme.post("/v1/cases", json=body, headers={"Idempotency-Key": "K-1"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]

    payment = {"external_payment_id": "PAY-1", "amount": "50.00", "currency": "CNY",
               "paid_on": clock.today.isoformat()}  # fmt: skip
    paid = await acme.post(f"/v1/cases/{first.json()['id']}/payments", json=payment)
    paid_too = await globex.post(f"/v1/cases/{other.json()['id']}/payments", json=payment)
    assert (paid.status_code, paid_too.status_code) == (201, 201)
    assert paid.json()["id"] != paid_too.json()["id"]
    # A payment only acme has, sent by globex against acme's case: not acme's replay, a 404.
    only_acme = {**payment, "external_payment_id": "PAY-2"}
    acme_url = f"/v1/cases/{first.json()['id']}/payments"
    assert (await acme.post(acme_url, json=only_acme)).status_code == 201
    problem(await globex.post(acme_url, json=only_acme), 404)
    assert (await acme.post(acme_url, json=only_acme)).headers["idempotent-replayed"] == "true"


async def test_blind_index_lookups_stay_in_the_tenant(
    acme: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    debtor = {"name": "Han Meimei", "national_id": "110101199003074516",
              "phone": "+8613712345678", "time_zone": "Asia/Shanghai"}  # fmt: skip
    case = await open_case(acme, clock, debtor=debtor)
    async with cases_app.state.runtime.sessions() as session:
        for tenant, expected in ((ACME, [uuid.UUID(case["debtor"]["id"])]), (GLOBEX, [])):
            found = await service.find_debtor_ids(
                session, tenant=tenant, national_id=debtor["national_id"], phone=debtor["phone"]
            )
            assert found == expected, tenant


async def test_imported_records_belong_to_the_importing_tenant(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    due = (clock.today - timedelta(days=9)).isoformat()
    csv = (
        "account_id,debtor_ref,debtor_name,time_zone,product,currency,principal,due_date\n"
        f"IMP-1,CUST-9,Wang Wu,Asia/Shanghai,credit_card,CNY,500.00,{due}\n"
    ).encode()
    open_case_too = await open_case(globex, clock, account_id="IMP-1")
    uploaded = await acme.post(
        "/v1/imports",
        params={"filename": "book.csv"},
        content=csv,
        headers={"content-type": "text/csv"},
    )
    assert uploaded.status_code == 202, uploaded.text
    job_id = uploaded.json()["id"]
    for _ in range(200):
        job = (await acme.get(f"/v1/imports/{job_id}")).json()
        if job["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    # globex's open case for the same account neither blocks the row nor gets updated by it.
    assert (job["status"], job["rows_created"]) == ("done", 1), job
    problem(await globex.get(f"/v1/imports/{job_id}"), 404)
    problem(await globex.get(f"/v1/imports/{job_id}/rejects"), 404)
    [imported] = (await acme.get("/v1/cases", params={"account_id": "IMP-1"})).json()["items"]
    [untouched] = (await globex.get("/v1/cases", params={"account_id": "IMP-1"})).json()["items"]
    assert untouched["id"] == open_case_too["id"]
    assert untouched["principal"] == open_case_too["principal"]
    [opened] = [e for e in await events(cases_app, "case.opened")
                if e["payload"]["case_id"] == imported["id"]]  # fmt: skip
    assert opened["tenant"] == ACME
    assert opened["actor"] == "admin:test-all"


# --- credentials and scopes -----------------------------------------------------------------

ID = "3b0e8a4e-8d1f-4c8e-9d55-2b8f0c1d2e3f"
#: Every route of the cases API and the scope it asks for.
ROUTES: list[tuple[str, str, Scope]] = [
    ("POST", "/v1/cases", Scope.CASES_WRITE),
    ("GET", "/v1/cases", Scope.CASES_READ),
    ("GET", "/v1/cases/{case_id}", Scope.CASES_READ),
    ("GET", "/v1/cases/{case_id}/timeline", Scope.CASES_READ),
    ("GET", "/v1/cases/{case_id}/reach", Scope.CASES_REACH),
    ("POST", "/v1/cases/{case_id}/notes", Scope.CASES_WRITE),
    ("POST", "/v1/cases/{case_id}/stage", Scope.CASES_WRITE),
    ("POST", "/v1/cases/{case_id}/close", Scope.CASES_WRITE),
    ("GET", "/v1/debtors/{debtor_id}", Scope.CASES_READ),
    ("PUT", "/v1/debtors/{debtor_id}/preferences", Scope.CASES_WRITE),
    ("GET", "/v1/debtors/{debtor_id}/export", Scope.PRIVACY_REQUESTS),
    ("POST", "/v1/debtors/{debtor_id}/erasure", Scope.PRIVACY_REQUESTS),
    ("POST", "/v1/cases/{case_id}/holds", Scope.CASES_WRITE),
    ("GET", "/v1/cases/{case_id}/holds", Scope.CASES_READ),
    ("POST", "/v1/cases/{case_id}/holds/{hold_id}/release", Scope.CASES_WRITE),
    ("POST", "/v1/cases/{case_id}/payments", Scope.PAYMENTS_WRITE),
    ("GET", "/v1/cases/{case_id}/payments", Scope.CASES_READ),
    ("POST", "/v1/cases/{case_id}/promises", Scope.CASES_WRITE),
    ("GET", "/v1/cases/{case_id}/promises", Scope.CASES_READ),
    ("POST", "/v1/cases/{case_id}/plans", Scope.CASES_WRITE),
    ("POST", "/v1/teams", Scope.TEAMS_ADMIN),
    ("GET", "/v1/teams", Scope.TEAMS_ADMIN),
    ("POST", "/v1/collectors", Scope.TEAMS_ADMIN),
    ("GET", "/v1/collectors", Scope.TEAMS_ADMIN),
    ("POST", "/v1/agencies", Scope.TEAMS_ADMIN),
    ("GET", "/v1/agencies", Scope.TEAMS_ADMIN),
    ("POST", "/v1/queues", Scope.TEAMS_ADMIN),
    ("GET", "/v1/queues", Scope.TEAMS_ADMIN),
    ("POST", "/v1/queues/{queue_id}/next", Scope.QUEUE_WORK),
    ("POST", "/v1/cases/{case_id}/release", Scope.QUEUE_WORK),
    ("POST", "/v1/cases/{case_id}/assign", Scope.TEAMS_ADMIN),
    ("POST", "/v1/cases/{case_id}/placement", Scope.TEAMS_ADMIN),
    ("POST", "/v1/cases/{case_id}/recall", Scope.TEAMS_ADMIN),
    ("POST", "/v1/allocation/run", Scope.TEAMS_ADMIN),
    ("POST", "/v1/jobs/daily-run", Scope.JOBS_RUN),
    ("POST", "/v1/imports", Scope.CASES_WRITE),
    ("GET", "/v1/imports/{job_id}", Scope.CASES_READ),
    ("GET", "/v1/imports/{job_id}/rejects", Scope.CASES_READ),
]


def _url(template: str) -> str:
    for name in ("case_id", "debtor_id", "hold_id", "queue_id", "job_id"):
        template = template.replace("{" + name + "}", ID)
    return template


async def test_every_route_asks_for_its_scope(cases_app: FastAPI) -> None:
    served = {
        (method, route.path)
        for route in api.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert served == {(method, path) for method, path, _ in ROUTES}
    without = {
        scope: key(kind=ClientKind.ADMIN, tenant=ACME, scopes=[s for s in Scope if s != scope])
        for scope in {scope for _, _, scope in ROUTES}
    }
    only = {scope: key(kind=ClientKind.ADMIN, tenant=ACME, scopes=[scope]) for scope in without}
    async with client(cases_app, {}) as http:
        for method, path, scope in ROUTES:
            refused = await http.request(method, _url(path), headers=without[scope])
            body = problem(refused, 403)
            assert scope.value in body["detail"], (method, path)
            allowed = await http.request(method, _url(path), headers=only[scope])
            assert allowed.status_code not in (401, 403), (method, path, allowed.text)


async def test_no_credential_is_401_and_a_kind_without_the_scope_is_403(
    cases_app: FastAPI, clock: Clock
) -> None:
    async with client(cases_app, {}) as anonymous:
        for method, path, _ in ROUTES:
            refused = await anonymous.request(method, _url(path))
            problem(refused, 401)
            assert refused.headers["www-authenticate"].startswith("Bearer"), path
        bogus = await anonymous.get("/v1/cases", headers={"Authorization": "Bearer qsk_nope"})
        problem(bogus, 401)
        case = case_body(clock)
        for kind, method, path, body in [
            ("dialer", "GET", "/v1/cases", None),
            ("auditor", "POST", "/v1/cases", case),
            ("crm", "POST", "/v1/teams", {"name": "t"}),
            ("crm", "POST", "/v1/jobs/daily-run", None),
            ("collector", "POST", f"/v1/cases/{ID}/payments", None),
            ("admin", "POST", "/v1/cases", case),
        ]:
            auth = headers(kind=kind, tenant=ACME)
            problem(await anonymous.request(method, path, json=body, headers=auth), 403)
        allowed = await anonymous.post("/v1/cases", json=case, headers=headers(kind="crm"))
        assert allowed.status_code == 201


# --- collectors see their own cases only ----------------------------------------------------


async def test_a_collector_reads_and_writes_only_its_own_cases(
    acme: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    team = (await acme.post("/v1/teams", json={"name": "field"})).json()
    alice, bob = [
        (await acme.post("/v1/collectors", json={"name": n, "team_id": team["id"],
                                                 "capacity": 9})).json()["id"]
        for n in ("alice", "bob")
    ]  # fmt: skip
    hers = await open_case(acme, clock)
    his = await open_case(acme, clock)
    unassigned = await open_case(acme, clock)
    for case, collector in ((hers, alice), (his, bob)):
        assigned = await acme.post(
            f"/v1/cases/{case['id']}/assign", json={"collector_id": collector, "assigned_by": "m"}
        )
        assert assigned.status_code == 200
    note = {"author": "alice", "text": "called"}
    async with client(cases_app, key(kind=ClientKind.COLLECTOR, tenant=ACME, subject=alice)) as me:
        listed = (await me.get("/v1/cases")).json()["items"]
        assert [c["id"] for c in listed] == [hers["id"]]
        assert (await me.get(f"/v1/cases/{hers['id']}")).status_code == 200
        assert (await me.get(f"/v1/debtors/{hers['debtor']['id']}")).status_code == 200
        assert (await me.post(f"/v1/cases/{hers['id']}/notes", json=note)).status_code == 201
        for other in (his, unassigned):
            problem(await me.get(f"/v1/cases/{other['id']}"), 404)
            problem(await me.get(f"/v1/cases/{other['id']}/timeline"), 404)
            problem(await me.get(f"/v1/debtors/{other['debtor']['id']}"), 404)
            problem(await me.post(f"/v1/cases/{other['id']}/notes", json=note), 404)
        # Intake is the CRM's: a case a collector opened would be one it could not see.
        before = await snapshot(cases_app)
        problem(await me.post("/v1/cases", json=case_body(clock)), 403)
        upload = await me.post(
            "/v1/imports?filename=book.jsonl",
            content=b"{}\n",
            headers={"content-type": "application/x-ndjson"},
        )
        problem(upload, 403)
        assert await snapshot(cases_app) == before

        # From a queue: only for itself, and the case it took is its own while it holds it.
        queue = (await acme.post("/v1/queues", json={"name": "q", "team_id": team["id"]})).json()
        problem(await me.post(f"/v1/queues/{queue['id']}/next", json={"collector_id": bob}), 403)
        taken = await me.post(f"/v1/queues/{queue['id']}/next", json={"collector_id": alice})
        assert taken.status_code == 200, taken.text
        took = taken.json()["id"]
        assert took in (hers["id"], unassigned["id"])
        assert (await me.get(f"/v1/cases/{took}")).status_code == 200
        problem(await me.post(f"/v1/cases/{took}/release", json={"collector_id": bob}), 403)
        released = await me.post(f"/v1/cases/{took}/release", json={"collector_id": alice})
        assert released.status_code == 200
        if took == unassigned["id"]:
            problem(await me.get(f"/v1/cases/{took}"), 404)

    async with client(cases_app, key(kind=ClientKind.COLLECTOR, tenant=ACME)) as nobody:
        problem(await nobody.get("/v1/cases"), 403)
        problem(await nobody.get(f"/v1/cases/{hers['id']}"), 403)
        queue_next = f"/v1/queues/{queue['id']}/next"
        problem(await nobody.post(queue_next, json={"collector_id": alice}), 403)
    # alice's key in another tenant: her cases are not there.
    elsewhere = key(kind=ClientKind.COLLECTOR, tenant=GLOBEX, subject=alice)
    async with client(cases_app, elsewhere) as stranger:
        problem(await stranger.get(f"/v1/cases/{hers['id']}"), 404)
        assert (await stranger.get("/v1/cases")).json()["items"] == []


# --- events ---------------------------------------------------------------------------------


async def test_published_events_carry_the_records_tenant_and_the_actor(
    cases_app: FastAPI, clock: Clock
) -> None:
    async with client(cases_app, headers(kind="crm", tenant=GLOBEX)) as crm:
        case = await open_case(crm, clock)
        paid = await crm.post(
            f"/v1/cases/{case['id']}/payments",
            json={"external_payment_id": "P-9", "amount": "5.00", "currency": "CNY",
                  "paid_on": clock.today.isoformat()},
        )  # fmt: skip
        assert paid.status_code == 201
        prefs = await crm.put(
            f"/v1/debtors/{case['debtor']['id']}/preferences",
            json={"opted_out_channels": ["sms"], "consents": [], "changed_by": "x",
                  "reason": "asked"},
        )  # fmt: skip
        assert prefs.status_code == 200
    staged = await events(cases_app)
    assert {e["type"] for e in staged} >= {
        "case.opened", "payment.received", "case.updated", "debtor.preferences_changed"
    }  # fmt: skip
    for envelope in staged:
        assert (envelope["tenant"], envelope["actor"]) == (GLOBEX, "crm:test-crm"), envelope


async def test_the_daily_run_works_through_every_tenant_but_the_route_only_the_callers(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    ends = (clock.now + timedelta(days=1)).isoformat()
    cases = {}
    for tenant, http in ((ACME, acme), (GLOBEX, globex)):
        case = await open_case(http, clock)
        placed = await http.post(
            f"/v1/cases/{case['id']}/holds",
            json={"kind": "hardship", "reason": "r", "placed_by": "a", "ends_at": ends},
        )
        assert placed.status_code == 201
        cases[tenant] = case["id"]
    clock.advance(days=2)

    ran = await acme.post("/v1/jobs/daily-run")
    assert ran.status_code == 200
    assert ran.json()["holds_expired"] == 1
    assert (await acme.get(f"/v1/cases/{cases[ACME]}")).json()["on_hold"] is False
    assert (await globex.get(f"/v1/cases/{cases[GLOBEX]}")).json()["on_hold"] is True

    async with cases_app.state.runtime.sessions() as session, session.begin():
        ctx = service.Context(now=clock.now, correlation_id="job", tenant="default")
        done = await service.daily_run(session, ctx=ctx, every_tenant=True)
    assert done.holds_expired == 1
    assert (await globex.get(f"/v1/cases/{cases[GLOBEX]}")).json()["on_hold"] is False
    released = {
        e["payload"]["case_id"]: (e["tenant"], e["actor"])
        for e in await events(cases_app, "case.hold_released")
    }
    assert released == {cases[ACME]: (ACME, "admin:test-all"), cases[GLOBEX]: (GLOBEX, None)}
    timeline = (await globex.get(f"/v1/cases/{cases[GLOBEX]}/timeline")).json()["entries"]
    assert timeline[-1]["kind"] == "hold_released"


# --- consumed events ------------------------------------------------------------------------


def received(payload: EventPayload, *, tenant: str) -> Received:
    envelope = build_envelope(
        payload, key=str(uuid.uuid4()), producer="test", correlation_id="c", tenant=tenant
    )
    return Received(envelope=envelope, payload=payload, topic="t", partition=0, offset=0)


def consumed_events(case: dict[str, Any], clock: Clock) -> list[EventPayload]:
    case_id, debtor_id = uuid.UUID(case["id"]), uuid.UUID(case["debtor"]["id"])
    return [
        CaseScored(case_id=case_id, score_id=uuid.uuid4(), model_id="m", model_version="1",
                   priority=77.0, risk_tier=RiskTier.HIGH, days_past_due=20,
                   amount_outstanding=Decimal("1.00"), currency="CNY", scored_at=clock.now),
        ScoreOverridden(case_id=case_id, score_id=uuid.uuid4(), override_id=uuid.uuid4(),
                        priority=88.0, reason="r", overridden_by="x", overridden_at=clock.now),
        ContactOutcomeRecorded(outcome_id=uuid.uuid4(), attempt_id=None, case_id=case_id,
                               debtor_id=debtor_id, channel="call",
                               result=OutcomeResult.DISPUTE_RAISED, occurred_at=clock.now),
        ContactOutcomeRecorded(outcome_id=uuid.uuid4(), attempt_id=None, case_id=case_id,
                               debtor_id=debtor_id, channel="call",
                               result=OutcomeResult.NO_ANSWER, occurred_at=clock.now),
        ComplaintOpened(complaint_id=uuid.uuid4(), case_id=case_id, debtor_id=debtor_id,
                        channel="phone", category=ComplaintCategory.HARASSMENT,
                        received_at=clock.now, first_response_due=clock.now,
                        resolution_due=clock.now),
        ComplaintOpened(complaint_id=uuid.uuid4(), debtor_id=debtor_id, channel="phone",
                        category=ComplaintCategory.HARASSMENT, received_at=clock.now,
                        first_response_due=clock.now, resolution_due=clock.now),
        ViolationDetected(violation_id=uuid.uuid4(), rule_id="CN-HOURS", citation="c",
                          severity=Severity.MAJOR, reason="r", subject="s", case_id=case_id,
                          debtor_id=debtor_id, occurred_at=clock.now, detected_at=clock.now,
                          evidence_seqs=[1], hold_requested=True),
    ]  # fmt: skip


async def test_consumed_events_naming_another_tenants_case_are_dead_lettered(
    acme: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(acme, clock)
    handlers = make_handlers(service.DEFAULT_POLICY, clock)
    before = await snapshot(cases_app)
    for payload in consumed_events(case, clock):
        message = received(payload, tenant=GLOBEX)
        with pytest.raises(PermanentMessageError, match="another tenant"):
            async with cases_app.state.runtime.sessions() as session, session.begin():
                await handlers[payload.event_type](session, message)
    assert await snapshot(cases_app) == before

    # The same events under the case's own tenant are applied.
    for payload in consumed_events(case, clock):
        async with cases_app.state.runtime.sessions() as session, session.begin():
            await handlers[payload.event_type](session, received(payload, tenant=ACME))
    applied = (await acme.get(f"/v1/cases/{case['id']}")).json()
    assert (applied["priority"], applied["on_hold"]) == (88.0, True)
    kinds = {h["kind"] for h in (await acme.get(f"/v1/cases/{case['id']}/holds")).json()}
    assert kinds == {"dispute", "complaint", "compliance_review"}
    placed = await events(cases_app, "case.hold_placed")
    assert {e["tenant"] for e in placed} == {ACME}
    assert {e["actor"] for e in placed} == {None}
