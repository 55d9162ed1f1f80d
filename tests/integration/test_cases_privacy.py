"""Data-subject requests in the cases service, on SQLite and PostgreSQL: the export holds every
record decrypted (and only the caller's tenant's), erasure is refused while the debt is still
collected, and carried out it leaves no personal value, token or blind index in the raw rows
while the financial records of a closed case inside its retention period stay."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from tests.auth_support import headers
from tests.integration.cases_support import (
    Clock,
    case_body,
    cases_app,
    cases_db,
    clock,
    events,
    http,
    open_case,
    problem,
    snapshot,
)
from tests.integration.test_cases_encryption import (
    CITY,
    EMAIL,
    NATIONAL_ID,
    PHONE,
    SECRETS,
    STREET,
    debtor,
    dump,
    raw_rows,
)

__all__ = ["cases_app", "cases_db", "clock", "http"]  # fixtures

NOTE = "Debtor says her husband Wang Wei pays on Fridays; call him at work"
HOLD_REASON = "hospitalised with a heart condition until mid-month"
PERSONAL = (*SECRETS, "张三", NOTE, HOLD_REASON, "CUST-")


async def full_case(http: httpx.AsyncClient, clock: Clock) -> dict[str, Any]:
    """A case with every kind of record attached: note, hold (released), promise, payment."""
    response = await http.post(
        "/v1/cases",
        json=case_body(
            clock,
            debtor=debtor(language="zh", region="CN-31"),
            risk_features={"MonthlyIncome": 5400, "age": 37},
        ),
        headers={"Idempotency-Key": f"dsr-{uuid.uuid4().hex[:8]}"},
    )
    assert response.status_code == 201, response.text
    case: dict[str, Any] = response.json()
    base = f"/v1/cases/{case['id']}"
    note = await http.post(f"{base}/notes", json={"author": "collector:li", "text": NOTE})
    assert note.status_code == 201, note.text
    hold = await http.post(
        f"{base}/holds",
        json={"kind": "hardship", "reason": HOLD_REASON, "placed_by": "supervisor:wang"},
    )
    assert hold.status_code == 201, hold.text
    released = await http.post(
        f"{base}/holds/{hold.json()['id']}/release",
        json={"released_by": "supervisor:wang", "reason": "back home, " + HOLD_REASON},
    )
    assert released.status_code == 200, released.text
    promise = await http.post(
        f"{base}/promises",
        json={
            "amount": "500.00",
            "promised_date": (clock.today + timedelta(days=5)).isoformat(),
            "taken_by": "collector:li",
        },
    )
    assert promise.status_code == 201, promise.text
    payment = await http.post(
        f"{base}/payments",
        json={
            "external_payment_id": f"PAY-{uuid.uuid4().hex[:8]}",
            "amount": "700.00",
            "currency": "CNY",
            "paid_on": clock.today.isoformat(),
            "channel": "bank_transfer",
        },
    )
    assert payment.status_code == 201, payment.text
    return case


async def close(http: httpx.AsyncClient, case_id: str) -> None:
    closed = await http.post(
        f"/v1/cases/{case_id}/close",
        json={"closure": "written_off", "reason": "uncollectable", "closed_by": "manager:zhao"},
    )
    assert closed.status_code == 200, closed.text


def erasure(ref: str = "DSR-1") -> dict[str, str]:
    return {"request_ref": ref, "reason": "the data subject asked for erasure"}


async def test_the_export_holds_every_record_decrypted_for_the_tenant_only(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await full_case(http, clock)
    debtor_id = case["debtor"]["id"]
    response = await http.get(f"/v1/debtors/{debtor_id}/export")
    assert response.status_code == 200, response.text
    export = response.json()
    record = export["debtor"]
    assert (record["national_id"], record["phone"], record["name"]) == (NATIONAL_ID, PHONE, "张三")
    assert [p["value"] for p in record["contact_points"]] == [PHONE, EMAIL]
    assert record["addresses"][0]["lines"] == [STREET]
    assert record["addresses"][0]["city"] == CITY
    assert record["erased_at"] is None
    assert export["erasure"] is None
    [exported] = export["cases"]
    assert exported["case"]["id"] == case["id"]
    assert exported["case"]["risk_features"] == {"MonthlyIncome": 5400, "age": 37}
    assert [n["text"] for n in exported["notes"]] == [NOTE]
    assert [h["reason"] for h in exported["holds"]] == [HOLD_REASON]
    assert [p["amount"] for p in exported["payments"]] == ["700.00"]
    assert len(exported["promises"]) == 1
    kinds = [e["kind"] for e in exported["timeline"]]
    assert kinds[:3] == ["opened", "note", "hold_placed"]
    assert "payment" in kinds
    # Snapshots are exported decrypted too.
    assert exported["timeline"][0]["snapshot"]["debtor"]["contact_points"][1]["value"] == EMAIL
    assert any("contact" in where for where in export["elsewhere"])

    other = await http.get(f"/v1/debtors/{debtor_id}/export", headers=headers(tenant="acme"))
    problem(other, 404)
    unknown = await http.get(f"/v1/debtors/{uuid.uuid4()}/export")
    problem(unknown, 404)
    crm = await http.get(f"/v1/debtors/{debtor_id}/export", headers=headers(kind="crm"))
    assert "privacy:requests" in problem(crm, 403)["detail"]
    crm_erasure = await http.post(
        f"/v1/debtors/{debtor_id}/erasure", json=erasure(), headers=headers(kind="crm")
    )
    problem(crm_erasure, 403)


async def test_erasure_is_refused_while_a_case_is_open_and_for_another_tenant(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await full_case(http, clock)
    debtor_id = case["debtor"]["id"]
    before = await snapshot(cases_app)
    refused = problem(await http.post(f"/v1/debtors/{debtor_id}/erasure", json=erasure()), 409)
    assert case["id"] in refused["detail"]
    assert "still being collected" in refused["detail"]
    assert await snapshot(cases_app) == before
    [row] = await raw_rows(cases_app, "debtors")
    assert row["national_id"].startswith("enc:v1:")
    assert row["erased_at"] is None
    assert await raw_rows(cases_app, "erasures") == []

    await close(http, case["id"])
    other = await http.post(
        f"/v1/debtors/{debtor_id}/erasure", json=erasure(), headers=headers(tenant="acme")
    )
    problem(other, 404)
    assert await raw_rows(cases_app, "erasures") == []
    assert await events(cases_app, "debtor.erased") == []


async def test_erasure_overwrites_personal_data_and_keeps_financial_records(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await full_case(http, clock)
    case_id, debtor_id = case["id"], case["debtor"]["id"]
    await close(http, case_id)
    clock.advance(days=30)
    response = await http.post(f"/v1/debtors/{debtor_id}/erasure", json=erasure())
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["retained_case_ids"] == [case_id]
    assert result["deleted_case_ids"] == []
    assert {"payments", "promises", "plans", "cases.balances"} <= set(result["retained"])
    assert "17(3)(b)" in result["retained"]["payments"]
    assert "debtor.national_id_index" in result["erased_fields"]
    assert result["requested_by"] == "admin:test-all"

    # --- the raw rows: no clear value, no token, no blind index left ---------------------
    [row] = await raw_rows(cases_app, "debtors")
    for column in ("national_id", "national_id_index", "phone", "phone_index", "external_ref"):
        assert row[column] is None, column
    for column in ("contact_points", "addresses"):
        assert json.loads(row[column]) == [] if isinstance(row[column], str) else row[column] == []
    assert row["name"] == ""
    assert row["language"] is None
    assert row["region"] is None
    assert row["erased_at"] is not None
    for table in ("debtors", "cases", "holds", "notes", "timeline", "idempotency_keys"):
        text = dump(await raw_rows(cases_app, table))
        assert "enc:v1:" not in text, f"a token is left in {table}"
        for value in PERSONAL:
            assert value not in text, f"{value!r} is left in {table}"
    assert [n["text"] for n in await raw_rows(cases_app, "notes")] == [""]
    assert [h["reason"] for h in await raw_rows(cases_app, "holds")] == [""]
    [case_row] = await raw_rows(cases_app, "cases")
    features = case_row["risk_features"]
    assert (json.loads(features) if isinstance(features, str) else features) == {}
    for entry in await raw_rows(cases_app, "timeline"):
        snap = entry["snapshot"]
        snap = json.loads(snap) if isinstance(snap, str) else snap
        assert snap["debtor"]["name"] == ""
        assert snap["debtor"]["contact_points"] == []
        assert snap["debtor"]["addresses"] == []
        assert snap["debtor"]["external_ref"] is None
        assert snap["risk_features"] == {}
    [reply] = await raw_rows(cases_app, "idempotency_keys")
    stored = reply["response"]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored["debtor"]["name"] == ""
    assert stored["debtor"]["id"] == debtor_id
    # Financial records stay, keyed by the debtor id only.
    assert [p["amount"] for p in await raw_rows(cases_app, "payments")] != []
    assert len(await raw_rows(cases_app, "promises")) == 1
    assert uuid.UUID(str(case_row["debtor_id"])) == uuid.UUID(debtor_id)
    assert str(case_row["paid_total"]) not in ("0", "0.00")

    # --- one event, the debtor's tenant and the caller ----------------------------------
    [event] = await events(cases_app, "debtor.erased")
    assert (event["tenant"], event["actor"], event["key"]) == (
        "default",
        "admin:test-all",
        debtor_id,
    )
    assert event["payload"]["case_ids"] == [case_id]
    assert event["payload"]["request_ref"] == "DSR-1"
    assert event["payload"]["retained"] == result["retained"]

    # --- idempotent by request_ref; a new request is 409 ---------------------------------
    again = await http.post(f"/v1/debtors/{debtor_id}/erasure", json=erasure())
    assert again.status_code == 200
    assert again.json() == result
    assert again.headers["Idempotent-Replayed"] == "true"
    twice = await http.post(f"/v1/debtors/{debtor_id}/erasure", json=erasure("DSR-2"))
    assert "already erased" in problem(twice, 409)["detail"]
    assert len(await events(cases_app, "debtor.erased")) == 1

    # --- what the API shows afterwards -------------------------------------------------
    read = (await http.get(f"/v1/debtors/{debtor_id}")).json()
    assert read["erased_at"] is not None
    assert read["name"] == ""
    assert read["contact_points"] == []
    assert read["addresses"] == []
    export = (await http.get(f"/v1/debtors/{debtor_id}/export")).json()
    assert export["erasure"] == result
    assert export["debtor"]["national_id"] is None
    [kept] = export["cases"]
    assert [p["amount"] for p in kept["payments"]] == ["700.00"]
    assert [n["text"] for n in kept["notes"]] == [""]
    assert all(HOLD_REASON not in e["summary"] for e in kept["timeline"])
    assert kept["timeline"][-1]["kind"] == "erased"

    # A new intake naming the same person makes a new debtor: the erased one stays erased.
    fresh = await open_case(http, clock, debtor=debtor(external_ref=case["debtor"]["external_ref"]))
    assert fresh["debtor"]["id"] != debtor_id
    assert (await http.get(f"/v1/debtors/{debtor_id}")).json()["erased_at"] is not None


async def test_cases_past_the_retention_period_are_deleted_whole(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    old = await full_case(http, clock)
    await close(http, old["id"])
    debtor_id = old["debtor"]["id"]
    clock.advance(days=5 * 365 + 1)
    response = await http.post(f"/v1/debtors/{debtor_id}/erasure", json=erasure("DSR-9"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["deleted_case_ids"] == [old["id"]]
    assert result["retained_case_ids"] == []
    assert result["retained"] == {}
    assert result["retained_until"] is None
    for table in ("cases", "payments", "promises", "holds", "notes", "timeline"):
        assert await raw_rows(cases_app, table) == [], table
    assert await raw_rows(cases_app, "idempotency_keys") == []
    [row] = await raw_rows(cases_app, "debtors")
    assert row["erased_at"] is not None
    assert row["national_id"] is None
    export = (await http.get(f"/v1/debtors/{debtor_id}/export")).json()
    assert export["cases"] == []
    assert export["debtor"]["consents"] == []
    [event] = await events(cases_app, "debtor.erased")
    assert event["payload"]["retained"] == {}
    assert event["payload"]["case_ids"] == [old["id"]]
