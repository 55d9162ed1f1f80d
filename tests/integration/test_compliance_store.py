"""The evidence chain in a real database: dedupe, and tampering found by /v1/audit/verify."""

from __future__ import annotations

import itertools
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
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("compliance")


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
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://compliance"
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
        # Moving an entry into another tenant's listings is tampering too.
        ("UPDATE audit_entries SET tenant = 'globex' WHERE seq = 7", 7),
    ],
    ids=["edit-body", "edit-column", "delete-middle", "delete-last", "edit-hash", "edit-tenant"],
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


async def test_heads_and_proofs_from_stored_and_recomputed_nodes_equal_the_whole_tree(
    app: FastAPI,
) -> None:
    """Nodes below LOWEST_STORED_LEVEL come from the entries, the others from the table: every
    head, inclusion path and consistency proof, across block edges and with appends that
    start mid-block, equals the one computed from all the leaves (RFC 6962), and a purged
    entry (its leaf hash kept) changes none of them."""
    from services.compliance import domain, merkle

    sizes = (1, 2, 63, 64, 65, 100, 127, 128, 129, 191, 192, 200, 256, 257, 300)
    for first, end in itertools.pairwise((0, 1, 37, 64, 65, 129, 200, 257, 300)):
        await append(app, [event(i) for i in range(first, end)])
    purged = domain.purged_body((await stored_bodies(app))[69])
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE audit_entries SET body = :b WHERE seq = 70"), {"b": purged}
        )
    leaves = domain.leaves_of(await stored_bodies(app))
    async with app.state.runtime.sessions() as session:
        for size in sizes:
            for seq in sorted({1, size // 2 or 1, 64, 65, 70, size} & set(range(1, size + 1))):
                proof = await service.inclusion(session, tenant="default", seq=seq, tree_size=size)
                assert bytes.fromhex(proof.root_hash) == merkle.root(leaves[:size]), size
                path = [bytes.fromhex(h) for h in proof.audit_path]
                assert path == merkle.inclusion_proof(seq - 1, leaves[:size]), (seq, size)
            for first in sorted({1, 63, 64, 65, size // 3 or 1} & set(range(1, size + 1))):
                consistency = await service.consistency(session, first=first, second=size)
                proof_hashes = [bytes.fromhex(h) for h in consistency.proof]
                assert proof_hashes == merkle.consistency_proof(first, leaves[:size]), (first, size)
        assert bytes.fromhex((await service.tree_head(session)).root_hash) == merkle.root(leaves)


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
    """A log that predates stored nodes gets exactly the nodes appending would have written;
    a downgrade below 0007 stores the lower levels again, as 0003 and the appends did."""
    import asyncio

    from alembic import command

    from services.compliance import merkle
    from shared.migrate import alembic_config
    from tests.helpers import ROOT

    await append(app, [event(i) for i in range(45)])
    await append(app, [event(i) for i in range(45, 150)])
    head = (await client.get("/v1/audit/tree-head")).json()
    engine = app.state.runtime.engine
    query = sa.text("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx")
    async with engine.connect() as conn:
        stored = [(r.level, r.idx, bytes(r.hash)) for r in (await conn.execute(query)).all()]
    # Every perfect subtree of 64 leaves or more (150 = 128 + 16 + 4 + 2), nothing else.
    assert [(level, idx) for level, idx, _ in stored] == [(6, 0), (6, 1), (7, 0)]
    bodies = await stored_bodies(app)
    every_node, _ = merkle.nodes_appended(0, merkle.leaf_hashes(bodies), [])
    assert stored == sorted(n for n in every_node if n[0] >= service.LOWEST_STORED_LEVEL)
    await engine.dispose()
    config = alembic_config(migrations_dir=ROOT / "services" / "compliance" / "migrations", url=url)
    await asyncio.to_thread(command.downgrade, config, "0006")
    async with engine.connect() as conn:
        restored = [(r.level, r.idx, bytes(r.hash)) for r in (await conn.execute(query)).all()]
    assert restored == sorted(every_node)
    await engine.dispose()
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


# --- the batch append API, and verification by worker processes ---------------------------


async def append_batch(app: FastAPI, events: list[Envelope], **kwargs: Any) -> list[int | None]:
    async with app.state.runtime.sessions() as session, session.begin():
        return await service.append_events(
            session, items=[("cases.events", e) for e in events], now=utc_now(), **kwargs
        )


async def stored_bodies(app: FastAPI) -> list[bytes]:
    async with app.state.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq"))).all()
    return [bytes(r.body) for r in rows]


async def assert_head_is_the_root_of(client: httpx.AsyncClient, bodies: list[bytes]) -> None:
    from services.compliance import merkle

    head = (await client.get("/v1/audit/tree-head")).json()
    assert head == {
        "tree_size": len(bodies),
        "root_hash": merkle.root(merkle.leaf_hashes(bodies)).hex(),
    }


async def test_append_events_dedupes_within_a_batch_and_against_the_log(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    events = [event(i) for i in range(12)]
    assert await append_batch(app, [*events[:6], events[2]]) == [1, 2, 3, 4, 5, 6, None]
    assert await append_batch(app, events[4:10]) == [None, None, 7, 8, 9, 10]
    async with app.state.runtime.sessions() as session, session.begin():
        pending = await service.append_event(
            session, topic="cases.events", envelope=events[10], now=utc_now()
        )
        assert pending is not None
        assert pending.seq == 11
        seqs = await service.append_events(
            session, items=[("t", events[10]), ("t", events[11])], now=utc_now()
        )
        assert seqs == [None, 12]
    assert await append_batch(app, []) == []
    verify = (await client.get("/v1/audit/verify")).json()
    assert (verify["ok"], verify["entries_checked"]) == (True, 12)
    await assert_head_is_the_root_of(client, await stored_bodies(app))


async def test_append_events_stores_exactly_what_append_event_stores(
    app: FastAPI, migrated_database: MigratedDatabaseFactory
) -> None:
    """The same events at the same instant, one by one on one log and in batches of three on
    another: every stored byte of entries, nodes and head is the same, and each body is the
    reference canonical_entry."""
    import asyncio

    from services.compliance import domain
    from shared.db import create_engine, session_factory

    now = utc_now()
    events = [
        Envelope(
            type="case.opened",
            version=1,
            producer="cases",
            key=f"case-{i}",
            correlation_id="c",
            causation_id=None if i % 2 else f"cause-{i}",
            payload={
                "n": i,
                "debtor": {"name": "王小明", "phone": "+86 138", "risk_features": {"age": 40}},
                "note": 'quote " backslash \\ newline \n tab \t é 😀',
                "amounts": [1.5, None, True, {"email": "a@b.c"}],
            },
        )
        for i in range(70)  # past 64: a stored Merkle node
    ]
    async with app.state.runtime.sessions() as session, session.begin():
        for e in events:
            await service.append_event(
                session, topic="cases.events", envelope=e, now=now, pii_key=b"key"
            )
    # It creates the database with asyncio.run: not on this test's loop.
    other_url = await asyncio.to_thread(migrated_database, "compliance", "compliance_batch")
    other = create_engine(other_url)
    try:
        for at in range(0, 70, 3):
            async with session_factory(other)() as session, session.begin():
                await service.append_events(
                    session,
                    items=[("cases.events", e) for e in events[at : at + 3]],
                    now=now,
                    pii_key=b"key",
                )
        tables = {
            "audit_entries": "seq",
            "merkle_nodes": "level, idx",
            "chain_head": "id",
        }
        for table, order in tables.items():
            query = sa.text(f"SELECT * FROM {table} ORDER BY {order}")
            async with app.state.runtime.engine.connect() as conn:
                one_by_one = [tuple(r) for r in (await conn.execute(query)).all()]
            async with other.connect() as conn:
                batched = [tuple(r) for r in (await conn.execute(query)).all()]
            assert batched == one_by_one, table
            assert one_by_one
    finally:
        await other.dispose()
    for seq, (e, body) in enumerate(zip(events, await stored_bodies(app), strict=True), 1):
        assert body == domain.canonical_entry(
            seq=seq,
            topic="cases.events",
            recorded_at=now.isoformat(),
            envelope=domain.protect_personal_data(e.model_dump(mode="json"), key=b"key"),
        )
        assert "王小明".encode() not in body


async def test_append_events_rolled_back_in_a_savepoint_are_appended_again_on_retry(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    a, b, c, d = (event(i) for i in range(4))
    async with app.state.runtime.sessions() as session, session.begin():
        assert await service.append_events(session, items=[("t", a)], now=utc_now()) == [1]
        savepoint = await session.begin_nested()
        assert await service.append_events(session, items=[("t", b), ("t", c)], now=utc_now())
        await savepoint.rollback()
        async with session.begin_nested():
            seqs = await service.append_events(session, items=[("t", b), ("t", c)], now=utc_now())
            assert seqs == [2, 3]
        # Rows of append_event wait for a flush: a savepoint rolled back drops them too.
        savepoint = await session.begin_nested()
        assert await service.append_event(session, topic="t", envelope=d, now=utc_now())
        await savepoint.rollback()
        seqs = await service.append_events(session, items=[("t", c), ("t", d)], now=utc_now())
        assert seqs == [None, 4]
    entries = (await client.get("/v1/audit/entries", params={"limit": 10})).json()["entries"]
    assert [e["event_id"] for e in entries] == [str(x.event_id) for x in (a, b, c, d)]
    assert (await client.get("/v1/audit/verify")).json()["ok"] is True
    await assert_head_is_the_root_of(client, await stored_bodies(app))


#: Two parts of whole 4096-entry blocks and a partial one: worker processes get real seams.
BIG = 2 * 4096 + 37


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        (None, None),
        ("UPDATE audit_entries SET prev_hash = entry_hash WHERE seq = 4097", 4097),
        ("DELETE FROM audit_entries WHERE seq = 4097", 4097),
        ("UPDATE audit_entries SET event_type = 'case.closed' WHERE seq = 4096", 4096),
        ("UPDATE audit_entries SET topic = 'other.events' WHERE seq = 8229", 8229),
        ("UPDATE audit_entries SET body = REPLACE(body, '\"n\":7', '\"n\":8') WHERE seq = 8", 8),
    ],
    ids=["intact", "prev-on-seam", "delete-on-seam", "column-before-seam", "column-last", "body"],
)
async def test_verification_in_worker_processes_gives_the_verdict_of_one_pass(
    app: FastAPI,
    backend: str,
    tamper: str | None,
    broken_at: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_processes = service._verify_in_processes
    parts_verified: list[int] = []

    async def spy(*args: Any, **kwargs: Any) -> list[Any]:
        parts = await in_processes(*args, **kwargs)
        parts_verified.append(len(parts))
        return parts

    monkeypatch.setattr(service, "_verify_in_processes", spy)
    for at in range(0, BIG, 2000):
        await append_batch(app, [event(i) for i in range(at, min(at + 2000, BIG))])
    if tamper is not None:
        async with app.state.runtime.engine.begin() as conn:
            if "REPLACE" in tamper:  # bytes, not text, on either database
                row = await conn.execute(sa.text("SELECT body FROM audit_entries WHERE seq = 8"))
                body = bytes(row.scalar_one()).replace(b'"n":7', b'"n":8')
                await conn.execute(
                    sa.text("UPDATE audit_entries SET body = :b WHERE seq = 8"), {"b": body}
                )
            else:
                await conn.execute(sa.text(tamper))
    verdicts = []
    for workers in (2, 1):  # on PostgreSQL both run in this process
        async with app.state.runtime.sessions() as session, session.begin():
            verdicts.append(await service.verify_chain(session, chunk_size=1000, workers=workers))
    assert parts_verified == ([2] if backend == "sqlite" else [])
    assert verdicts[0] == verdicts[1]
    assert verdicts[0].first_broken_seq == broken_at, verdicts[0]
    assert verdicts[0].ok is (tamper is None)
    if tamper is None:
        assert verdicts[0].entries_checked == BIG


async def test_verification_checks_the_tree_against_stored_nodes_and_the_checkpoint(
    app: FastAPI,
) -> None:
    from services.compliance import domain, merkle

    async def verdict() -> Any:
        async with app.state.runtime.sessions() as session, session.begin():
            return await service.verify_chain(session, chunk_size=50)

    await append(app, [event(i) for i in range(200)])
    async with app.state.runtime.sessions() as session, session.begin():
        assert await service.issue_checkpoint(
            session, seed_hex="11" * 32, now=utc_now(), correlation_id="c"
        )
    assert (await verdict()).ok
    engine = app.state.runtime.engine
    # 200 = 128 + 64 + 8: the head is folded from the stored nodes (7, 0) and (6, 2), and
    # from (3, 24), recomputed from entries 193..200.
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE merkle_nodes SET hash = :h WHERE level = 6 AND idx = 2"),
            {"h": bytes(32)},
        )
    result = await verdict()
    assert (result.ok, result.first_broken_seq) == (False, 129)
    assert "entries 129..192" in (result.problem or "")
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM merkle_nodes WHERE level = 6 AND idx = 2"))
    result = await verdict()
    assert not result.ok
    assert "missing" in (result.problem or "")

    # Rewrite the whole log from entry 2 on, consistently: chain, head and every stored node.
    # Only the signed checkpoint can tell.
    async with engine.begin() as conn:
        rows = (
            await conn.execute(sa.text("SELECT seq, body FROM audit_entries ORDER BY seq"))
        ).all()
        bodies = [bytes(r.body) for r in rows]
        bodies[1] = bodies[1].replace(b'"n":1', b'"n":9')
        prev = domain.GENESIS_HASH
        for seq, body in enumerate(bodies, 1):
            digest = domain.chain_hash(prev_hash=prev, entry=body)
            await conn.execute(
                sa.text(
                    "UPDATE audit_entries SET body = :b, prev_hash = :p, entry_hash = :h "
                    "WHERE seq = :s"
                ),
                {"b": body, "p": prev, "h": digest, "s": seq},
            )
            prev = digest
        await conn.execute(sa.text("UPDATE chain_head SET entry_hash = :h"), {"h": prev})
        await conn.execute(sa.text("DELETE FROM merkle_nodes"))
        nodes, _ = merkle.nodes_appended(0, merkle.leaf_hashes(bodies), [])
        await conn.execute(
            sa.text("INSERT INTO merkle_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
            [
                {"l": level, "i": idx, "h": value}
                for level, idx, value in nodes
                if level >= service.LOWEST_STORED_LEVEL
            ],
        )
    result = await verdict()
    assert (result.ok, result.entries_checked, result.first_broken_seq) == (False, 200, None)
    assert "checkpoint" in (result.problem or "")


def test_the_file_verifier_in_worker_processes_gives_the_verdict_of_one_pass(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export of two whole blocks and a bit, verified in parts by processes and in one
    pass: the same problems, intact or with an entry edited on the seam."""
    import json

    from services.compliance import cli, domain, merkle, signing

    monkeypatch.setattr(cli, "PARALLEL_MIN_ENTRIES", 0)
    prev = domain.GENESIS_HASH
    lines = []
    bodies = []
    for seq in range(1, BIG + 1):
        envelope = event(seq).model_dump(mode="json")
        body = domain.canonical_entry(seq=seq, topic="t", recorded_at="r", envelope=envelope)
        digest = domain.chain_hash(prev_hash=prev, entry=body)
        entry = {
            "seq": seq,
            "event_id": envelope["event_id"],
            "topic": "t",
            "event_type": envelope["type"],
            "body": body.decode(),
            "prev_hash": prev,
            "entry_hash": digest,
        }
        lines.append(json.dumps(entry, ensure_ascii=False))
        bodies.append(body)
        prev = digest
    key = signing.private_key("22" * 32)
    checkpoints = []
    for size in (5000, BIG):
        root = merkle.root(merkle.leaf_hashes(bodies[:size])).hex()
        issued = utc_now()
        message = signing.checkpoint_message(tree_size=size, root_hash=root, issued_at=issued)
        checkpoints.append(
            {
                "tree_size": size,
                "root_hash": root,
                "issued_at": issued.isoformat(),
                "key_id": "k",
                "public_key": signing.public_key_hex(key),
                "signature": signing.sign(key, message),
            }
        )
    (tmp_path / "checkpoints.json").write_text(json.dumps(checkpoints))
    (tmp_path / "entries.jsonl").write_text("\n".join(lines) + "\n")
    assert cli._part_offsets(tmp_path / "entries.jsonl", parts=2)[0][1][0] == 4097
    assert cli.verify_directory(tmp_path, workers=2) == []
    forged = json.loads(lines[4096])
    forged["body"] = forged["body"].replace('"n":4097', '"n":4098')
    lines[4096] = json.dumps(forged, ensure_ascii=False)
    (tmp_path / "entries.jsonl").write_text("\n".join(lines) + "\n")
    problems = cli.verify_directory(tmp_path, workers=2)
    assert problems == cli.verify_directory(tmp_path, workers=1)
    assert problems == [
        "chain broken at entry 4097: entry_hash does not match the entry's content",
        "checkpoint of size 5000: entries do not hash to its root",
        f"checkpoint of size {BIG}: entries do not hash to its root",
    ]
