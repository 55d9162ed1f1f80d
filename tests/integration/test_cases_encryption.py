"""Personal data at rest in the cases database: tokens only in the raw rows, clear values over the
API, lookup by blind index, key rotation and the migration of rows written in clear; on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.cases import service
from services.cases.cli import rotate_keys
from services.cases.models import Debtor
from services.cases.settings import DEMO_FIELD_KEY, DEMO_FIELD_KEY_ID, CasesSettings
from shared import crypto
from shared.crypto import CryptoError, FieldCipher, token_key_id
from shared.db import create_engine, session_factory
from shared.migrate import upgrade
from tests.auth_support import headers as auth_headers
from tests.conftest import DatabaseFactory
from tests.helpers import ROOT
from tests.integration.cases_support import (
    Clock,
    case_body,
    cases_app,
    cases_db,
    clock,
    http,
    open_case,
)

__all__ = ["cases_app", "cases_db", "clock", "http"]

NATIONAL_ID = "31010119900101123X"
PHONE = "+8613912345678"
EMAIL = "zhang.san@example.com"
STREET = "浦东新区世纪大道 100 号"
CITY = "Shanghai-Pudong"
SECRETS = (NATIONAL_ID, PHONE, PHONE[1:], "13912345678", EMAIL, STREET, CITY)


def debtor(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_ref": f"CUST-{uuid.uuid4().hex[:8]}",
        "name": "张三",
        "national_id": NATIONAL_ID,
        "phone": PHONE,
        "contact_points": [
            {"kind": "phone", "value": PHONE, "type": "mobile", "consent": True},
            {"kind": "email", "value": EMAIL, "type": "personal"},
        ],
        "addresses": [{"lines": [STREET], "city": CITY, "country": "CN"}],
        "time_zone": "Asia/Shanghai",
    }
    body.update(overrides)
    return body


async def raw_rows(app: FastAPI, table: str) -> list[dict[str, Any]]:
    async with app.state.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"SELECT * FROM {table}"))).mappings().all()
    return [dict(row) for row in rows]


def as_token(raw: Any) -> str:
    """A JSON column's token as read by raw SQL: the JSON text on SQLite, decoded on asyncpg."""
    value = raw if isinstance(raw, str) and raw.startswith("enc:") else json.loads(raw)
    assert isinstance(value, str), raw
    return value


def dump(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str, ensure_ascii=False)


def assert_no_clear_text(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} is stored in clear"


async def test_personal_fields_are_stored_as_tokens_and_read_back_clear(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    response = await http.post(
        "/v1/cases",
        json=case_body(clock, debtor=debtor()),
        headers={"Idempotency-Key": "enc-1"},
    )
    assert response.status_code == 201, response.text
    opened = response.json()

    debtors = await raw_rows(cases_app, "debtors")
    assert len(debtors) == 1
    row = debtors[0]
    for column in ("national_id", "phone"):
        assert row[column].startswith(f"enc:v1:{DEMO_FIELD_KEY_ID}:"), row[column]
    for column in ("contact_points", "addresses"):
        assert as_token(row[column]).startswith(f"enc:v1:{DEMO_FIELD_KEY_ID}:"), row[column]
    assert len(row["national_id_index"]) == 64
    assert len(row["phone_index"]) == 64
    assert_no_clear_text(dump(debtors))
    # Where a copy of the debtor is kept: the timeline snapshot and the idempotent replay.
    assert_no_clear_text(dump(await raw_rows(cases_app, "timeline")))
    assert_no_clear_text(dump(await raw_rows(cases_app, "idempotency_keys")))
    assert_no_clear_text(dump(await raw_rows(cases_app, "outbox")))

    # The API still answers with the clear values, now and as of the past, and on replay.
    assert opened["debtor"]["contact_points"][1]["value"] == EMAIL
    case = (await http.get(f"/v1/cases/{opened['id']}")).json()
    assert case["debtor"] == opened["debtor"]
    assert case["debtor"]["addresses"][0]["lines"] == [STREET]
    past = await http.get(f"/v1/cases/{opened['id']}", params={"as_of": clock.now.isoformat()})
    assert past.status_code == 200, past.text
    assert past.json()["debtor"] == opened["debtor"]
    again = await http.post(
        "/v1/cases",
        json=case_body(clock, debtor=debtor(external_ref=opened["debtor"]["external_ref"]))
        | {"account_id": opened["account_id"]},
        headers={"Idempotency-Key": "enc-1"},
    )
    assert again.status_code in (200, 201), again.text
    assert again.json()["debtor"] == opened["debtor"]
    read = (await http.get(f"/v1/debtors/{opened['debtor']['id']}")).json()
    assert read["contact_points"] == opened["debtor"]["contact_points"]


async def test_debtors_are_found_by_blind_index(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    first = await open_case(http, clock, debtor=debtor())
    ref = first["debtor"]["external_ref"]
    other = await open_case(
        http, clock, debtor=debtor(national_id="110101198001011111", phone="+8613700000000")
    )
    # A second case for the same debtor finds the existing debtor.
    second = await open_case(http, clock, debtor=debtor(external_ref=ref))
    assert second["debtor"]["id"] == first["debtor"]["id"]
    assert len(await raw_rows(cases_app, "debtors")) == 2

    async with cases_app.state.runtime.sessions() as session:
        by_id = await service.find_debtor_ids(
            session, tenant="default", national_id=NATIONAL_ID.lower() + " "
        )
        by_phone = await service.find_debtor_ids(
            session, tenant="default", phone="+86 139-1234-5678"
        )
        both = await service.find_debtor_ids(
            session, tenant="default", national_id=NATIONAL_ID, phone=PHONE
        )
        nobody = await service.find_debtor_ids(
            session, tenant="default", national_id="999999999999"
        )
    assert [str(i) for i in by_id] == [first["debtor"]["id"]]
    assert [str(i) for i in by_phone] == [first["debtor"]["id"]]
    assert [str(i) for i in both] == [first["debtor"]["id"]]
    assert other["debtor"]["id"] != first["debtor"]["id"]
    assert nobody == []


async def test_rotate_keys_re_encrypts_under_the_new_key_id(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock, cases_db: str
) -> None:
    opened = [await open_case(http, clock, debtor=debtor()) for _ in range(3)]
    await open_case(http, clock)  # a debtor without national id or contact points
    new_key = os.urandom(32).hex()
    settings = CasesSettings(
        field_keys={DEMO_FIELD_KEY_ID: DEMO_FIELD_KEY, "k2": new_key}, field_key_id="k2"
    )
    rotated = settings.field_cipher()
    progress = await rotate_keys(cases_db, rotated, batch=2)
    assert progress.rewritten["debtors"] == 4  # 3 with everything, 1 with its phone
    assert progress.scanned["debtors"] == 4
    assert progress.rewritten["timeline"] == 3

    debtors = await raw_rows(cases_app, "debtors")
    tokens = [
        row[column]
        for row in debtors
        for column in ("national_id", "phone", "contact_points", "addresses")
        if row[column] not in (None, "[]", [])
    ]
    tokens = [as_token(t) for t in tokens]
    assert len(tokens) == 3 * 4 + 1
    assert {token_key_id(t) for t in tokens} == {"k2"}
    assert_no_clear_text(dump(debtors))
    timeline = dump(await raw_rows(cases_app, "timeline"))
    assert "enc:v1:k2:" in timeline
    assert f"enc:v1:{DEMO_FIELD_KEY_ID}:" not in timeline

    # Only the new key is needed now; indexes did not change (separate key).
    only_new = FieldCipher(
        keys={"k2": new_key}, active_key_id="k2", index_key=settings.index_key.get_secret_value()
    )
    with crypto.using(only_new):
        response = await http.get(f"/v1/cases/{opened[0]['id']}")
        assert response.json()["debtor"] == opened[0]["debtor"]
        async with cases_app.state.runtime.sessions() as session:
            found = await service.find_debtor_ids(
                session, tenant="default", national_id=NATIONAL_ID
            )
    assert {str(i) for i in found} == {o["debtor"]["id"] for o in opened}
    # The old key alone can no longer read them; a second run has nothing left to do.
    with crypto.using(CasesSettings().field_cipher()), pytest.raises(CryptoError, match="k2"):
        async with cases_app.state.runtime.sessions() as session:
            await session.get(Debtor, uuid.UUID(opened[0]["debtor"]["id"]))
    again = await rotate_keys(cases_db, rotated)
    assert sum(again.rewritten.values()) == 0


def test_migration_encrypts_rows_written_in_clear(make_database: DatabaseFactory) -> None:
    """Migrations run outside the event loop, like the service's `migrate`."""
    url = make_database("legacy")
    migrations = ROOT / "services" / "cases" / "migrations"
    upgrade(migrations_dir=migrations, url=url, revision="0004")
    debtor_id = uuid.uuid4()
    contact_points = [{"kind": "email", "value": EMAIL, "type": "personal"}]
    addresses = [{"lines": [STREET], "city": CITY, "country": "CN"}]
    response = {"id": "x", "debtor": {"name": "n", "contact_points": contact_points}}

    async def write_legacy_rows() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO debtors (id, kind, name, national_id, phone, time_zone, "
                        "contact_points, addresses, created_at) VALUES (:id, 'person', 'n', :nid, "
                        ":phone, 'Asia/Shanghai', :cp, :ad, :now)"
                    ).bindparams(
                        sa.bindparam("id", type_=sa.Uuid()),
                        sa.bindparam("cp", type_=sa.JSON()),
                        sa.bindparam("ad", type_=sa.JSON()),
                        sa.bindparam("now", type_=sa.DateTime(timezone=True)),
                    ),
                    {
                        "id": debtor_id,
                        "nid": NATIONAL_ID,
                        "phone": PHONE,
                        "cp": contact_points,
                        "ad": addresses,
                        "now": datetime.now(UTC),
                    },
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO idempotency_keys (key, request_hash, status_code, response, "
                        "created_at) VALUES ('k', 'h', 201, :resp, :now)"
                    ).bindparams(
                        sa.bindparam("resp", type_=sa.JSON()),
                        sa.bindparam("now", type_=sa.DateTime(timezone=True)),
                    ),
                    {"resp": response, "now": datetime.now(UTC)},
                )
        finally:
            await engine.dispose()

    asyncio.run(write_legacy_rows())
    upgrade(migrations_dir=migrations, url=url)
    asyncio.run(check_encrypted(url, debtor_id, contact_points, addresses))


async def check_encrypted(
    url: str, debtor_id: uuid.UUID, contact_points: list[Any], addresses: list[Any]
) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = [
                dict(r)
                for table in ("debtors", "idempotency_keys")
                for r in (await conn.execute(sa.text(f"SELECT * FROM {table}"))).mappings()
            ]
        assert_no_clear_text(dump(rows))
        assert rows[0]["national_id"].startswith(f"enc:v1:{DEMO_FIELD_KEY_ID}:")
        async with session_factory(engine)() as session:
            found = await session.get(Debtor, debtor_id)
            assert found is not None
            assert found.national_id == NATIONAL_ID
            assert found.phone == PHONE
            assert found.contact_points == contact_points
            assert found.addresses == addresses
            # Rows from before tenancy belong to the default tenant.
            by_phone = await service.find_debtor_ids(session, tenant="default", phone=PHONE)
            by_id = await service.find_debtor_ids(
                session, tenant="default", national_id=NATIONAL_ID
            )
            assert by_phone == by_id == [debtor_id]
    finally:
        await engine.dispose()


async def test_rotation_keeps_each_tenants_reply_under_a_shared_idempotency_key(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock, cases_db: str
) -> None:
    """Two tenants used the same Idempotency-Key: rotating one row a page must re-encrypt
    both rows, each with its own reply (paging or updating by the key alone would skip one
    or copy one tenant's reply over the other's)."""
    tenants = ("acme", "globex", "default")
    created, bodies = {}, {}
    for tenant in tenants:
        bodies[tenant] = case_body(clock, debtor=debtor())
        response = await http.post(
            "/v1/cases",
            json=bodies[tenant],
            headers={**auth_headers(tenant=tenant), "Idempotency-Key": "same-key"},
        )
        assert response.status_code == 201, response.text
        created[tenant] = response.json()["id"]
    settings = CasesSettings(
        field_keys={DEMO_FIELD_KEY_ID: DEMO_FIELD_KEY, "k2": os.urandom(32).hex()},
        field_key_id="k2",
    )
    progress = await rotate_keys(cases_db, settings.field_cipher(), batch=1)
    assert progress.scanned["idempotency_keys"] == 3
    assert progress.rewritten["idempotency_keys"] == 3
    replies = dump(await raw_rows(cases_app, "idempotency_keys"))
    assert f"enc:v1:{DEMO_FIELD_KEY_ID}:" not in replies
    with crypto.using(settings.field_cipher()):
        for tenant in tenants:
            again = await http.post(
                "/v1/cases",
                json=bodies[tenant],
                headers={**auth_headers(tenant=tenant), "Idempotency-Key": "same-key"},
            )
            assert again.headers.get("Idempotent-Replayed") == "true", again.text
            assert again.json()["id"] == created[tenant]
