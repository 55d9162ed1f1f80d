"""How a dialer gets a debtor's number: `GET /v1/cases/{id}/reach`, one case and one channel
at a time, with the dialer's `cases:reach` scope. No event carries the number."""

from __future__ import annotations

import json

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
)
from tests.integration.test_cases_encryption import EMAIL, PHONE, debtor

__all__ = ["cases_app", "cases_db", "clock", "http"]  # fixtures

WORK = "+8613911110000"
HOME_OPTED_OUT = "+8613922220000"
MAIN = "+8613933330000"


async def test_a_dialer_gets_the_numbers_it_may_use_and_no_event_carries_them(
    cases_app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    points = [
        {"kind": "phone", "value": WORK, "type": "work"},
        {"kind": "phone", "value": PHONE, "type": "mobile", "consent": True},
        {"kind": "phone", "value": HOME_OPTED_OUT, "type": "home", "opted_out": True},
        {"kind": "email", "value": EMAIL, "type": "personal"},
    ]
    created = await http.post(
        "/v1/cases", json=case_body(clock, debtor=debtor(phone=MAIN, contact_points=points))
    )
    assert created.status_code == 201, created.text
    case = created.json()
    url, dialer = f"/v1/cases/{case['id']}/reach", headers(kind="dialer")

    async def reach(channel: str) -> list[tuple[str, str, bool]]:
        response = await http.get(url, params={"channel": channel}, headers=dialer)
        assert response.status_code == 200, response.text
        assert response.json()["channel"] == channel
        return [(p["value"], p["type"], p["consent"]) for p in response.json()["contact_points"]]

    # Consented first; the opted-out number never; the debtor's main phone as well.
    assert await reach("call") == [
        (PHONE, "mobile", True),
        (WORK, "work", False),
        (MAIN, "other", False),
    ]
    assert await reach("sms") == await reach("call")
    assert await reach("email") == [(EMAIL, "personal", False)]

    # The number is for the dialer only: it cannot read the case, and a CRM key cannot ask.
    assert (await http.get(f"/v1/cases/{case['id']}", headers=dialer)).status_code == 403
    crm = await http.get(url, params={"channel": "call"}, headers=headers(kind="crm"))
    assert crm.status_code == 403, crm.text
    assert crm.headers["content-type"] == "application/problem+json"

    # Not at work, then no calls at all.
    preferences = f"/v1/debtors/{case['debtor']['id']}/preferences"
    for opted_out in (["workplace"], ["call", "workplace"]):
        changed = await http.put(
            preferences,
            json={"opted_out_channels": opted_out, "changed_by": "crm", "reason": "asked"},
        )
        assert changed.status_code == 200, changed.text
    assert await reach("call") == []
    assert await reach("sms") == [(PHONE, "mobile", True), (MAIN, "other", False)]

    # Nothing the case published carries a number or an address in clear.
    published = json.dumps(await events(cases_app))
    for secret in (PHONE, WORK, MAIN, HOME_OPTED_OUT, EMAIL, PHONE[1:], MAIN[1:]):
        assert secret not in published, secret


async def test_reach_refuses_a_bad_channel_and_an_unknown_case(
    cases_app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    created = await http.post("/v1/cases", json=case_body(clock))
    url, dialer = f"/v1/cases/{created.json()['id']}/reach", headers(kind="dialer")
    bad = await http.get(url, params={"channel": "letter"}, headers=dialer)
    assert bad.status_code == 422, bad.text
    assert bad.json()["invalid-params"][0]["name"] == "query.channel"
    missing = await http.get(url, headers=dialer)
    assert missing.status_code == 422, missing.text
    unknown = await http.get(
        "/v1/cases/00000000-0000-4000-8000-000000000000/reach",
        params={"channel": "call"},
        headers=dialer,
    )
    assert unknown.status_code == 404, unknown.text
    # Another tenant's dialer does not learn that the case exists.
    other = await http.get(
        url, params={"channel": "call"}, headers=headers(kind="dialer", tenant="acme")
    )
    assert other.status_code == 404, other.text
