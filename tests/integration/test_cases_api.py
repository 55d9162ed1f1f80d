"""Cases API against a real database (SQLite and PostgreSQL), bus disabled.

Every 4xx path must answer problem+json naming the field, and write nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.cases.app import create_app
from services.cases.settings import CasesSettings
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": f"LN-{uuid.uuid4().hex[:12]}",
        "debtor": {"name": "张三", "phone": "+8613800138000", "time_zone": "Asia/Shanghai"},
        "product": "consumer_loan",
        "currency": "CNY",
        "principal": "12000.00",
        "interest": "350.50",
        "fees": "0",
        "due_date": (date.today() - timedelta(days=20)).isoformat(),
        "industry_risk": 40,
    }
    body.update(overrides)
    return body


@pytest.fixture
def cases_url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("cases")


@pytest.fixture
async def app(cases_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(
        CasesSettings(database_url=cases_url, enable_bus=False, max_body_bytes=4096)
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=transport, base_url="http://cases"
    ) as http:
        yield http


async def written(app: FastAPI) -> tuple[int, int, int]:
    engine = app.state.runtime.engine
    return (
        await count_rows(engine, "cases"),
        await count_rows(engine, "debtors"),
        await count_rows(engine, "outbox"),
    )


async def test_open_case_writes_case_and_event_in_one_go(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    body = case_body()
    response = await client.post("/v1/cases", json=body)
    assert response.status_code == 201, response.text
    case = response.json()
    assert response.headers["location"] == f"/v1/cases/{case['id']}"
    assert case["amount_outstanding"] == "12350.50"
    assert case["days_past_due"] == 20
    assert case["dpd_bucket"] == "16-30"
    assert await written(app) == (1, 1, 1)

    engine = app.state.runtime.engine
    async with engine.connect() as conn:
        from sqlalchemy import text

        row = (await conn.execute(text("SELECT topic, key, event_type, value FROM outbox"))).one()
    assert (row.topic, row.key, row.event_type) == ("cases.events", case["id"], "case.opened")
    envelope = json.loads(row.value)
    assert envelope["payload"]["case_id"] == case["id"]
    assert envelope["payload"]["days_past_due"] == 20
    assert envelope["correlation_id"] == response.headers["x-correlation-id"]

    fetched = await client.get(f"/v1/cases/{case['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == case


async def test_idempotency_key_replays_the_first_response(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    body = case_body()
    first = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert await written(app) == (1, 1, 1)

    other = await client.post("/v1/cases", json=case_body(), headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await written(app) == (1, 1, 1)


async def test_second_open_case_for_an_account_is_a_conflict(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    body = case_body()
    assert (await client.post("/v1/cases", json=body)).status_code == 201
    second = await client.post("/v1/cases", json={**body, "principal": "1.00"})
    assert second.status_code == 409
    assert body["account_id"] in second.json()["detail"]
    assert await written(app) == (1, 1, 1)


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing account", {"account_id": None}, "body.account_id"),
    ("negative principal", {"principal": "-5"}, "body.principal"),
    ("non-numeric amount", {"principal": "12abc"}, "body.principal"),
    ("three decimals", {"interest": "1.005"}, "body.interest"),
    (
        "unknown time zone",
        {"debtor": {"name": "A", "time_zone": "Mars/Olympus"}},
        "body.debtor.time_zone",
    ),
    ("lower-case currency", {"currency": "cny"}, "body.currency"),
    ("industry risk over 100", {"industry_risk": 101}, "body.industry_risk"),
    ("unknown field", {"colour": "red"}, "body.colour"),
    (
        "bad phone",
        {"debtor": {"name": "A", "time_zone": "UTC", "phone": "12"}},
        "body.debtor.phone",
    ),
    ("nothing owed", {"principal": "0", "interest": "0", "fees": "0"}, "body"),
    ("bad date", {"due_date": "2026-02-30"}, "body.due_date"),
    ("unknown collateral", {"collateral_type": "castle"}, "body.collateral_type"),
    ("nested model input", {"risk_features": {"age": {"years": 3}}}, "body.risk_features"),
    ("feature name too long", {"risk_features": {"x" * 65: 1}}, "body.risk_features"),
]


@pytest.mark.parametrize(
    ("label", "overrides", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, app: FastAPI, label: str, overrides: dict[str, Any], field: str
) -> None:
    body = case_body(**overrides)
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post("/v1/cases", json=body)
    assert response.status_code == 422, (label, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    names = [p["name"] for p in problem["invalid-params"]]
    assert any(n == field or n.startswith(field + ".") for n in names), names
    assert await written(app) == (0, 0, 0)


async def test_future_due_date_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    response = await client.post("/v1/cases", json=case_body(due_date=tomorrow))
    assert response.status_code == 422
    assert "due_date" in response.json()["detail"]
    assert await written(app) == (0, 0, 0)


async def test_malformed_json_and_oversized_body(client: httpx.AsyncClient, app: FastAPI) -> None:
    malformed = await client.post(
        "/v1/cases", content=b'{"account_id": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"

    huge = case_body(product="x" * 10_000)
    too_big = await client.post("/v1/cases", json=huge)
    assert too_big.status_code == 413
    assert too_big.json()["type"].endswith("/body-too-large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = await client.post(
        "/v1/cases", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await written(app) == (0, 0, 0)


async def test_unknown_case_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/cases/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    bad_id = await client.get("/v1/cases/not-a-uuid")
    assert bad_id.status_code == 422


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True}
