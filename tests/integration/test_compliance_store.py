"""The evidence chain in a real database: dedupe, and tampering found by /v1/audit/verify."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.compliance import service
from services.compliance.app import create_app
from services.compliance.settings import ComplianceSettings
from shared.contracts import Envelope, utc_now
from tests.conftest import DatabaseFactory
from tests.helpers import migrate_service


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    return migrate_service("compliance", make_database("compliance"))


@pytest.fixture
async def app(url: str) -> AsyncIterator[FastAPI]:
    application = create_app(
        ComplianceSettings(database_url=url, enable_bus=False, verify_chunk_size=7)
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://compliance"
    ) as http:
        yield http


def event(n: int, key: str = "case-1") -> Envelope:
    return Envelope(
        type="case.opened",
        version=1,
        producer="cases",
        key=key,
        correlation_id="c",
        payload={"n": n, "name_hash": "ab" * 8},
    )


async def append(app: FastAPI, events: list[Envelope]) -> None:
    async with app.state.runtime.sessions() as session, session.begin():
        for e in events:
            await service.append_event(session, topic="cases.events", envelope=e, now=utc_now())


async def test_appends_once_and_verifies(app: FastAPI, client: httpx.AsyncClient) -> None:
    events = [event(i, key=f"case-{i % 3}") for i in range(20)]
    await append(app, events)
    await append(app, events[:5])  # redelivered
    verify = (await client.get("/v1/audit/verify")).json()
    assert verify == {
        "ok": True,
        "entries_checked": 20,
        "head_seq": 20,
        "head_hash": verify["head_hash"],
        "first_broken_seq": None,
        "problem": None,
    }
    page = (await client.get("/v1/audit/entries", params={"case_id": "case-1", "limit": 3})).json()
    assert [e["envelope"]["payload"]["n"] for e in page["entries"]] == [1, 4, 7]
    rest = (
        await client.get(
            "/v1/audit/entries",
            params={"case_id": "case-1", "after_seq": page["next_after_seq"], "limit": 100},
        )
    ).json()
    assert [e["envelope"]["payload"]["n"] for e in rest["entries"]] == [10, 13, 16, 19]
    assert rest["next_after_seq"] is None


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        (
            "UPDATE audit_entries SET body = REPLACE(body, '\"n\":11', '\"n\":12') WHERE seq = 12",
            12,
        ),
        ("UPDATE audit_entries SET event_type = 'payment.received' WHERE seq = 9", 9),
        ("DELETE FROM audit_entries WHERE seq = 5", 5),
        ("DELETE FROM audit_entries WHERE seq = 20", 20),
        ("UPDATE audit_entries SET entry_hash = prev_hash WHERE seq = 3", 3),
    ],
    ids=["edit-body", "edit-column", "delete-middle", "delete-last", "edit-hash"],
)
async def test_tampering_is_found_at_its_entry(
    app: FastAPI, client: httpx.AsyncClient, tamper: str, broken_at: int
) -> None:
    await append(app, [event(i) for i in range(20)])
    async with app.state.runtime.engine.begin() as conn:
        if "body" in tamper and "REPLACE" in tamper:
            row = (
                await conn.execute(sa.text("SELECT body FROM audit_entries WHERE seq = 12"))
            ).scalar_one()
            edited = bytes(row).replace(b'"n":11', b'"n":12')
            assert edited != bytes(row)
            await conn.execute(
                sa.text("UPDATE audit_entries SET body = :b WHERE seq = 12"), {"b": edited}
            )
        else:
            await conn.execute(sa.text(tamper))
    verify = (await client.get("/v1/audit/verify")).json()
    assert verify["ok"] is False
    assert verify["first_broken_seq"] == broken_at, verify
    assert verify["problem"]


async def test_paging_parameters_are_bounded(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: a seq beyond 64 bits used to reach SQLite and fail with a 500.
    response = await client.get("/v1/audit/entries", params={"after_seq": 2**70})
    assert response.status_code == 422
    assert response.json()["invalid-params"][0]["name"] == "query.after_seq"


async def test_tree_head_and_proofs_verify_against_the_stored_log(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from services.compliance.merkle import verify_consistency, verify_inclusion

    await append(app, [event(i) for i in range(13)])
    head = (await client.get("/v1/audit/tree-head")).json()
    assert head["tree_size"] == 13
    for seq in (1, 7, 13):
        proof = (await client.get(f"/v1/audit/proof/{seq}")).json()
        assert proof["root_hash"] == head["root_hash"]
        assert verify_inclusion(
            leaf=bytes.fromhex(proof["leaf_hash"]),
            index=seq - 1,
            tree_size=13,
            proof=[bytes.fromhex(h) for h in proof["audit_path"]],
            expected_root=bytes.fromhex(head["root_hash"]),
        )
    old = (await client.get("/v1/audit/proof/3", params={"tree_size": 5})).json()
    await append(app, [event(i) for i in range(100, 110)])
    grown = (await client.get("/v1/audit/consistency", params={"first": 5, "second": 23})).json()
    assert grown["first_root"] == old["root_hash"]
    assert verify_consistency(
        first_size=5,
        second_size=23,
        first_root=bytes.fromhex(grown["first_root"]),
        second_root=bytes.fromhex(grown["second_root"]),
        proof=[bytes.fromhex(h) for h in grown["proof"]],
    )
    assert (await client.get("/v1/audit/proof/99")).status_code == 404
    assert (
        await client.get("/v1/audit/consistency", params={"first": 9, "second": 5})
    ).status_code == 422
    assert (await client.get("/v1/audit/proof/1", params={"tree_size": 500})).status_code == 422


async def test_signed_checkpoints_export_and_standalone_verification(
    app: FastAPI, client: httpx.AsyncClient, url: str, tmp_path: Any
) -> None:
    import asyncio
    import json
    import os
    import subprocess
    import sys

    from services.compliance.cli import verify_directory

    seed = "11" * 32
    await append(app, [event(i) for i in range(9)])
    async with app.state.runtime.sessions() as session, session.begin():
        first = await service.issue_checkpoint(
            session, seed_hex=seed, now=utc_now(), correlation_id="c"
        )
        again = await service.issue_checkpoint(
            session, seed_hex=seed, now=utc_now(), correlation_id="c"
        )
    assert first is not None
    assert again is None  # nothing new to sign
    await append(app, [event(i) for i in range(20, 25)])
    async with app.state.runtime.sessions() as session, session.begin():
        second = await service.issue_checkpoint(
            session, seed_hex=seed, now=utc_now(), correlation_id="c"
        )
    assert second is not None
    listed = (await client.get("/v1/audit/checkpoints")).json()
    assert [c["tree_size"] for c in listed] == [14, 9]
    assert listed[0]["root_hash"] == (await client.get("/v1/audit/tree-head")).json()["root_hash"]

    out = tmp_path / "export"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.compliance", "export", "--out", str(out)],
        env={**os.environ, "COMPLIANCE_DATABASE_URL": url, "COMPLIANCE_LOG_JSON": "false"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.compliance", "verify", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verify_directory(out) == []

    lines = (out / "entries.jsonl").read_text().splitlines()
    forged = json.loads(lines[4])
    forged["body"] = forged["body"].replace('"n":4', '"n":5')
    lines[4] = json.dumps(forged)
    (out / "entries.jsonl").write_text("\n".join(lines) + "\n")
    problems = verify_directory(out)
    assert any("entry 5" in p for p in problems), problems
    assert any("checkpoint of size 9" in p for p in problems), problems
    checkpoints = json.loads((out / "checkpoints.json").read_text())
    checkpoints[0]["root_hash"] = "00" * 32
    (out / "checkpoints.json").write_text(json.dumps(checkpoints))
    assert any("signature does not verify" in p for p in verify_directory(out))


async def test_migration_backfills_the_same_nodes_the_appends_store(
    app: FastAPI, client: httpx.AsyncClient, url: str
) -> None:
    """A log that predates stored nodes gets exactly the nodes appending would have written."""
    import asyncio

    from alembic import command

    from shared.migrate import alembic_config
    from tests.helpers import ROOT

    await append(app, [event(i) for i in range(45)])
    head = (await client.get("/v1/audit/tree-head")).json()
    engine = app.state.runtime.engine
    query = sa.text("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx")
    async with engine.connect() as conn:
        stored = [(r.level, r.idx, bytes(r.hash)) for r in (await conn.execute(query)).all()]
    assert len(stored) == 45 + 22 + 11 + 5 + 2 + 1  # every perfect subtree, nothing else
    await engine.dispose()
    config = alembic_config(migrations_dir=ROOT / "services" / "compliance" / "migrations", url=url)
    await asyncio.to_thread(command.downgrade, config, "0002")
    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.connect() as conn:
        backfilled = [(r.level, r.idx, bytes(r.hash)) for r in (await conn.execute(query)).all()]
    assert backfilled == stored
    assert (await client.get("/v1/audit/tree-head")).json() == head


async def test_an_append_rolled_back_in_a_savepoint_is_appended_again_on_retry(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The bus retries a failed message in a fresh savepoint of the same transaction: the
    retry must be appended (not taken for a duplicate) and the tree must stay exact."""
    first, retried, last = event(1), event(2), event(3)
    async with app.state.runtime.sessions() as session, session.begin():
        await service.append_event(session, topic="t", envelope=first, now=utc_now())
        savepoint = await session.begin_nested()
        await service.append_event(session, topic="t", envelope=retried, now=utc_now())
        await savepoint.rollback()
        async with session.begin_nested():
            assert await service.append_event(session, topic="t", envelope=retried, now=utc_now())
        await service.append_event(session, topic="t", envelope=last, now=utc_now())
        assert await service.append_event(session, topic="t", envelope=last, now=utc_now()) is None
    entries = (await client.get("/v1/audit/entries", params={"limit": 10})).json()["entries"]
    assert [e["event_id"] for e in entries] == [str(first.event_id), str(retried.event_id),
                                                str(last.event_id)]  # fmt: skip
    assert (await client.get("/v1/audit/verify")).json()["ok"] is True
    head = (await client.get("/v1/audit/tree-head")).json()
    from services.compliance import merkle

    async with app.state.runtime.engine.connect() as conn:
        bodies = (await conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq"))).all()
    assert head == {
        "tree_size": 3,
        "root_hash": merkle.root([merkle.leaf_hash(bytes(b.body)) for b in bodies]).hex(),
    }
