"""Holds, payments, promises, plans, closure and the timeline, on SQLite and PostgreSQL.

Every refusal must be a 4xx problem naming what is wrong, and must write nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.cases_support import (
    Clock,
    cases_app,
    cases_db,
    clock,
    count,
    events,
    http,
    open_case,
    problem,
    snapshot,
)

__all__ = ["cases_app", "cases_db", "clock", "http"]  # fixtures


async def test_hold_blocks_then_releases_with_events(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    back_dated = (clock.now - timedelta(days=10)).isoformat()
    placed = await http.post(
        f"/v1/cases/{case['id']}/holds",
        json={
            "kind": "hardship",
            "reason": "lost job",
            "placed_by": "supervisor:wang",
            "starts_at": back_dated,
        },
    )
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["active"] is True
    assert (await http.get(f"/v1/cases/{case['id']}")).json()["on_hold"] is True
    [event] = await events(cases_app, "case.hold_placed")
    assert event["payload"]["kind"] == "hardship"
    assert event["payload"]["starts_at"].startswith(back_dated[:19])

    held = await http.get("/v1/cases", params={"on_hold": "true"})
    assert [c["id"] for c in held.json()["items"]] == [case["id"]]

    released = await http.post(
        f"/v1/cases/{case['id']}/holds/{hold['id']}/release", json={"released_by": "wang"}
    )
    assert released.status_code == 200, released.text
    assert released.json()["active"] is False
    assert (await http.get(f"/v1/cases/{case['id']}")).json()["on_hold"] is False
    assert len(await events(cases_app, "case.hold_released")) == 1

    before = await snapshot(cases_app)
    again = await http.post(
        f"/v1/cases/{case['id']}/holds/{hold['id']}/release", json={"released_by": "wang"}
    )
    problem(again, 409)
    assert await snapshot(cases_app) == before


async def test_hold_refusals_write_nothing(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    before = await snapshot(cases_app)
    future = (clock.now + timedelta(days=1)).isoformat()
    cases = [
        ({"kind": "hardship", "reason": "x", "placed_by": "a", "starts_at": future}, 422),
        ({"kind": "holiday", "reason": "x", "placed_by": "a"}, 422),
        ({"kind": "dispute", "reason": "", "placed_by": "a"}, 422),
        (
            {"kind": "dispute", "reason": "x", "placed_by": "a", "ends_at": clock.now.isoformat()},
            422,
        ),
    ]
    for body, status in cases:
        problem(await http.post(f"/v1/cases/{case['id']}/holds", json=body), status)
    unknown = await http.post(
        f"/v1/cases/{uuid.uuid4()}/holds", json={"kind": "dispute", "reason": "x", "placed_by": "a"}
    )
    assert "no case" in problem(unknown, 404)["detail"]
    assert await snapshot(cases_app) == before


async def test_hold_with_an_end_expires_in_the_daily_run(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    ends = (clock.now + timedelta(days=2)).isoformat()
    await http.post(
        f"/v1/cases/{case['id']}/holds",
        json={"kind": "hardship", "reason": "pause", "placed_by": "a", "ends_at": ends},
    )
    assert (await http.post("/v1/jobs/daily-run")).json()["holds_expired"] == 0
    clock.advance(days=3)
    assert (await http.post("/v1/jobs/daily-run")).json()["holds_expired"] == 1
    assert (await http.get(f"/v1/cases/{case['id']}")).json()["on_hold"] is False
    [released] = await events(cases_app, "case.hold_released")
    assert released["payload"]["released_by"] == "system:cases"


async def test_payment_allocates_fees_interest_principal_and_is_idempotent(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)  # 10000 + 1000 interest + 100 fees
    body = {
        "external_payment_id": "PAY-1",
        "amount": "1500.00",
        "currency": "CNY",
        "paid_on": clock.today.isoformat(),
    }
    first = await http.post(f"/v1/cases/{case['id']}/payments", json=body)
    assert first.status_code == 201, first.text
    paid = first.json()
    assert (paid["to_fees"], paid["to_interest"], paid["to_principal"]) == (
        "100.00",
        "1000.00",
        "400.00",
    )
    assert paid["amount_outstanding_after"] == "9600.00"

    again = await http.post(f"/v1/cases/{case['id']}/payments", json=body)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == paid["id"]
    assert await count(cases_app, "payments") == 1
    assert len(await events(cases_app, "payment.received")) == 1

    before = await snapshot(cases_app)
    different = await http.post(f"/v1/cases/{case['id']}/payments", json={**body, "amount": "1.00"})
    assert "other details" in problem(different, 409)["detail"]
    assert await snapshot(cases_app) == before
    now = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert (now["principal"], now["interest"], now["fees"]) == ("9600.00", "0.00", "0.00")


BAD_PAYMENTS = [
    ("negative", {"amount": "-5.00"}, 422, "body.amount"),
    ("zero", {"amount": "0"}, 422, "body.amount"),
    ("non-numeric", {"amount": "12abc"}, 422, "body.amount"),
    ("three decimals", {"amount": "1.005"}, 422, "body.amount"),
    ("unknown currency", {"currency": "XYZ"}, 422, "body.currency"),
    ("missing id", {"external_payment_id": None}, 422, "body.external_payment_id"),
    ("bad date", {"paid_on": "2026-02-30"}, 422, "body.paid_on"),
]


@pytest.mark.parametrize(("label", "change", "status", "field"), BAD_PAYMENTS)
async def test_bad_payments_are_refused_naming_the_field(
    http: httpx.AsyncClient,
    cases_app: FastAPI,
    clock: Clock,
    label: str,
    change: dict[str, object],
    status: int,
    field: str,
) -> None:
    case = await open_case(http, clock)
    body: dict[str, object] = {
        "external_payment_id": "PAY-X",
        "amount": "10.00",
        "currency": "CNY",
        "paid_on": clock.today.isoformat(),
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    before = await snapshot(cases_app)
    result = problem(await http.post(f"/v1/cases/{case['id']}/payments", json=body), status)
    assert field in [p["name"] for p in result["invalid-params"]], (label, result)
    assert await snapshot(cases_app) == before


async def test_payment_rules_that_need_the_case(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    base = {"external_payment_id": "P", "amount": "10.00", "currency": "CNY"}
    before = await snapshot(cases_app)
    wrong_currency = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={**base, "currency": "USD", "paid_on": clock.today.isoformat()},
    )
    assert "differs from the case currency" in problem(wrong_currency, 422)["detail"]
    future = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={**base, "paid_on": (clock.today + timedelta(days=1)).isoformat()},
    )
    assert "future" in problem(future, 422)["detail"]
    unknown = await http.post(
        f"/v1/cases/{uuid.uuid4()}/payments", json={**base, "paid_on": clock.today.isoformat()}
    )
    problem(unknown, 404)
    assert await snapshot(cases_app) == before


async def test_instalment_payments_move_dpd_and_full_payment_settles(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    due = clock.today - timedelta(days=70)
    case = await open_case(
        http,
        clock,
        principal="3000.00",
        interest="0",
        fees="0",
        installment_amount="1000.00",
        due_date=due.isoformat(),
    )
    assert case["days_past_due"] == 70
    paid = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={
            "external_payment_id": "I-1",
            "amount": "1000.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    after = paid.json()["days_past_due_after"]
    assert 38 <= after <= 42  # one instalment paid: the oldest unpaid is a month later
    [updated] = await events(cases_app, "case.updated")
    assert "days_past_due" in updated["payload"]["changed"]

    final = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={
            "external_payment_id": "I-2",
            "amount": "2050.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    result = final.json()
    assert result["case_status_after"] == "closed"
    assert result["unapplied"] == "50.00"
    closed = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert (closed["status"], closed["closure"], closed["stage"]) == ("closed", "settled", "closed")
    [event] = await events(cases_app, "case.closed")
    assert event["payload"]["closure"] == "settled"

    late = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={
            "external_payment_id": "I-3",
            "amount": "1.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    problem(late, 409)


async def test_promise_kept_by_payment_and_broken_after_grace(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    kept_case = await open_case(http, clock)
    broken_case = await open_case(http, clock)
    promised = (clock.today + timedelta(days=5)).isoformat()
    for case in (kept_case, broken_case):
        created = await http.post(
            f"/v1/cases/{case['id']}/promises",
            json={"amount": "500.00", "promised_date": promised, "taken_by": "collector:li"},
        )
        assert created.status_code == 201, created.text
    assert len(await events(cases_app, "ptp.created")) == 2

    await http.post(
        f"/v1/cases/{kept_case['id']}/payments",
        json={
            "external_payment_id": "K-1",
            "amount": "500.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    [kept] = (await http.get(f"/v1/cases/{kept_case['id']}/promises")).json()
    assert kept["status"] == "kept"

    clock.advance(days=5 + 3)  # the promised day plus the three days of grace: not yet broken
    assert (await http.post("/v1/jobs/daily-run")).json()["promises_broken"] == 0
    clock.advance(days=1)
    run = (await http.post("/v1/jobs/daily-run")).json()
    assert run["promises_broken"] == 1
    [broken] = (await http.get(f"/v1/cases/{broken_case['id']}/promises")).json()
    assert broken["status"] == "broken"
    [event] = await events(cases_app, "ptp.broken")
    assert event["payload"]["case_id"] == broken_case["id"]
    assert event["payload"]["paid_amount"] == "0.00"
    assert event["payload"]["broken_promises_total"] == 1
    assert (await http.get(f"/v1/cases/{broken_case['id']}")).json()["broken_promises"] == 1
    assert len(await events(cases_app, "ptp.kept")) == 1


async def test_promise_refusals(http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock) -> None:
    case = await open_case(http, clock)
    before = await snapshot(cases_app)
    url = f"/v1/cases/{case['id']}/promises"
    past = await http.post(
        url,
        json={
            "amount": "5.00",
            "promised_date": (clock.today - timedelta(days=1)).isoformat(),
            "taken_by": "a",
        },
    )
    assert "past" in problem(past, 422)["detail"]
    too_much = await http.post(
        url,
        json={"amount": "99999.00", "promised_date": clock.today.isoformat(), "taken_by": "a"},
    )
    assert "exceeds the balance" in problem(too_much, 422)["detail"]
    far = await http.post(
        url,
        json={
            "amount": "5.00",
            "promised_date": (clock.today + timedelta(days=400)).isoformat(),
            "taken_by": "a",
        },
    )
    assert "payment plan" in problem(far, 422)["detail"]
    assert await snapshot(cases_app) == before


async def test_stepped_plan_and_approval_limits(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)  # owes 11100.00
    url = f"/v1/cases/{case['id']}/plans"
    plan = {
        "kind": "installments",
        "shape": "3+6+12",
        "step_weights": ["0.5", "1", "1.5"],
        "first_due_date": (clock.today + timedelta(days=7)).isoformat(),
        "approved_by": "manager:zhao",
        "approver_role": "collector",
    }
    before = await snapshot(cases_app)
    refused = problem(await http.post(url, json=plan), 403)
    assert "21 instalments exceed a collector's limit of 6" in refused["detail"]
    assert await snapshot(cases_app) == before

    created = await http.post(url, json={**plan, "approver_role": "manager"})
    assert created.status_code == 201, created.text
    body = created.json()
    amounts = [Decimal(i["amount"]) for i in body["installments"]]
    assert len(amounts) == 21
    assert sum(amounts) == Decimal("11100.00")
    assert amounts[0] < amounts[3] < amounts[9]  # stepped relief at the start
    assert len(await events(cases_app, "plan.created")) == 1
    assert len(await events(cases_app, "ptp.created")) == 21
    problem(await http.post(url, json={**plan, "approver_role": "manager"}), 409)


async def test_settlement_offer_paid_closes_the_case_as_settled(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)  # 10000 principal, 1000 interest, 100 fees
    url = f"/v1/cases/{case['id']}/plans"
    offer = {
        "kind": "settlement",
        "interest_waiver": "0.30",
        "first_due_date": (clock.today + timedelta(days=10)).isoformat(),
        "approved_by": "collector:li",
        "approver_role": "collector",
    }
    created = await http.post(url, json=offer)
    assert created.status_code == 201, created.text
    assert created.json()["total"] == "10800.00"
    assert created.json()["waived"] == "300.00"

    too_generous = problem(
        await http.post(
            f"/v1/cases/{(await open_case(http, clock))['id']}/plans",
            json={**offer, "principal_waiver": "0.2"},
        ),
        403,
    )
    assert "may not waive principal" in too_generous["detail"]

    paid = await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={
            "external_payment_id": "S-1",
            "amount": "10800.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    assert paid.json()["case_status_after"] == "closed"
    closed = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert closed["closure"] == "settled"
    [event] = await events(cases_app, "case.closed")
    assert event["payload"]["amount_outstanding"] == "300.00"  # the waived interest


async def test_manual_closure_and_stage(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    url = f"/v1/cases/{case['id']}"
    not_paid = await http.post(
        f"{url}/close", json={"closure": "settled", "reason": "x", "closed_by": "a"}
    )
    assert "still owes" in problem(not_paid, 409)["detail"]
    legal = await http.post(
        f"{url}/stage", json={"stage": "legal", "reason": "no contact 90 days", "changed_by": "m"}
    )
    assert legal.json()["stage"] == "legal"
    clock.advance(days=40)
    await http.post("/v1/jobs/daily-run")
    assert (await http.get(url)).json()["stage"] == "legal"  # the DPD roll leaves it there
    closed = await http.post(
        f"{url}/close", json={"closure": "written_off", "reason": "uncollectable", "closed_by": "m"}
    )
    assert closed.json()["closure"] == "written_off"
    [event] = await events(cases_app, "case.closed")
    assert event["payload"]["amount_outstanding"] == "11100.00"


async def test_timeline_in_order_and_case_as_of_a_past_date(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    opened_at = clock.now
    clock.advance(days=1)
    await http.post(
        f"/v1/cases/{case['id']}/notes", json={"author": "li", "text": "debtor travelling"}
    )
    clock.advance(days=1)
    await http.post(
        f"/v1/cases/{case['id']}/payments",
        json={
            "external_payment_id": "T-1",
            "amount": "2100.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
        },
    )
    clock.advance(days=1)
    timeline = (await http.get(f"/v1/cases/{case['id']}/timeline")).json()["entries"]
    assert [e["kind"] for e in timeline] == ["opened", "note", "payment"]
    assert [e["seq"] for e in timeline] == sorted(e["seq"] for e in timeline)

    then = await http.get(
        f"/v1/cases/{case['id']}",
        params={"as_of": (opened_at + timedelta(days=1, minutes=1)).isoformat()},
    )
    assert then.status_code == 200, then.text
    assert then.json()["amount_outstanding"] == "11100.00"
    assert then.json()["days_past_due"] == 21  # DPD as it was that day
    now = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert now["amount_outstanding"] == "9000.00"
    by_date = await http.get(
        f"/v1/cases/{case['id']}", params={"as_of": (clock.today - timedelta(days=4)).isoformat()}
    )
    assert "did not exist yet" in problem(by_date, 404)["detail"]
    partial = (
        await http.get(
            f"/v1/cases/{case['id']}/timeline",
            params={"as_of": (opened_at + timedelta(days=1, minutes=1)).isoformat()},
        )
    ).json()["entries"]
    assert [e["kind"] for e in partial] == ["opened", "note"]
    problem(await http.get(f"/v1/cases/{case['id']}", params={"as_of": "yesterday"}), 422)


async def test_debtor_preferences_reach_contact_through_events(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(
        http,
        clock,
        debtor={
            "name": "李四",
            "time_zone": "Asia/Shanghai",
            "external_ref": "CUST-77",
            "opted_out_channels": ["email"],
        },
    )
    second = await open_case(
        http,
        clock,
        debtor={"name": "李四", "time_zone": "Asia/Shanghai", "external_ref": "CUST-77"},
    )
    assert second["debtor"]["id"] == case["debtor"]["id"]
    [opened, _] = await events(cases_app, "case.opened")
    assert opened["payload"]["opted_out_channels"] == ["email"]

    debtor_url = f"/v1/debtors/{case['debtor']['id']}"
    before = await snapshot(cases_app)
    for bad in (
        {"opted_out_channels": ["pigeon"], "changed_by": "a", "reason": "x"},
        {"consents": ["everyone"], "changed_by": "a", "reason": "x"},
        {"opted_out_channels": ["sms"], "changed_by": "a"},
    ):
        problem(await http.put(f"{debtor_url}/preferences", json=bad), 422)
    problem(
        await http.put(
            f"/v1/debtors/{uuid.uuid4()}/preferences",
            json={"opted_out_channels": [], "changed_by": "a", "reason": "x"},
        ),
        404,
    )
    assert await snapshot(cases_app) == before

    changed = await http.put(
        f"{debtor_url}/preferences",
        json={
            "opted_out_channels": ["sms", "call", "sms"],
            "consents": ["agency:Far East Recovery"],
            "changed_by": "collector:li",
            "reason": "asked to stop texts and calls",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["opted_out_channels"] == ["call", "sms"]
    [event] = await events(cases_app, "debtor.preferences_changed")
    assert event["key"] == case["debtor"]["id"]
    assert event["payload"]["consents"] == ["agency:Far East Recovery"]
    for c in (case, second):
        kinds = [
            e["kind"] for e in (await http.get(f"/v1/cases/{c['id']}/timeline")).json()["entries"]
        ]
        assert kinds[-1] == "preferences"
    assert (await http.get(debtor_url)).json()["opted_out_channels"] == ["call", "sms"]
