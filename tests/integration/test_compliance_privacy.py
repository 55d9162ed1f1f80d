"""`debtor.erased` in the compliance service, on SQLite and PostgreSQL: the debtor's log entries
lose their content through the logged purge mechanism, except those a legal claim needs (an
open complaint, a violation); the chain still verifies and an inclusion proof issued before
still proves the same leaf under the same root; closed complaints lose their text."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.compliance import merkle
from shared.contracts import CaseOpened, DebtorErased, DebtorPreferencesChanged
from tests.integration.test_compliance_oversight import (
    Feed,
    app,
    client,
    local,
    opened,
    outcome,
    url,
)

__all__ = ["app", "client", "url"]  # fixtures

COMPLAINT = "The collector called my mother Li Na at 13800001111 about my debt."


def erasure(debtor_id: uuid.UUID, *cases: CaseOpened) -> DebtorErased:
    return DebtorErased(
        debtor_id=debtor_id,
        case_ids=[c.case_id for c in cases],
        request_ref="DSR-11",
        erased_fields=["debtor.name"],
        retained={"payments": "financial records"},
        erased_at=datetime.now(UTC),
    )


async def complaint(client: httpx.AsyncClient, case: CaseOpened, *, resolve: bool) -> str:
    response = await client.post(
        "/v1/complaints",
        json={
            "debtor_id": str(case.debtor_id),
            "case_id": str(case.case_id),
            "channel": "letter",
            "category": "harassment",
            "text": COMPLAINT,
            "received_by": "mailroom",
        },
    )
    assert response.status_code == 201, response.text
    complaint_id: str = response.json()["complaint_id"]
    if resolve:
        moved = await client.post(
            f"/v1/complaints/{complaint_id}/status",
            json={"status": "resolved", "changed_by": "agent-wang", "note": "apologised to Li Na"},
        )
        assert moved.status_code == 200, moved.text
    return complaint_id


async def entries(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit/entries", params={"limit": 1000})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


async def raw_complaints(app: FastAPI) -> dict[str, tuple[str, str]]:
    async with app.state.runtime.sessions() as s:
        rows = (await s.execute(sa.text("SELECT complaint_id, text, status FROM complaints"))).all()
    return {str(uuid.UUID(str(r[0]))): (r[1], r[2]) for r in rows}


async def test_erasure_purges_the_debtors_entries_but_keeps_legal_claims_and_proofs(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    quiet = opened()
    debtor_id = quiet.debtor_id
    violated = opened().model_copy(update={"debtor_id": debtor_id})
    disputed = opened().model_copy(update={"debtor_id": debtor_id})
    stranger = opened()
    for case in (quiet, violated, disputed, stranger):
        await feed.send(case, key=case.case_id)
        await feed.send(outcome(case, local(10)), key=case.case_id)
    await feed.send(outcome(violated, local(23)), key=violated.case_id)  # CN-HOURS
    preferences = DebtorPreferencesChanged(
        debtor_id=debtor_id,
        opted_out_channels=["sms"],
        consents=[],
        changed_by="collector:li",
        reason="asked",
        changed_at=local(11),
    )
    await feed.send(preferences, key=debtor_id)
    closed_complaint = await complaint(client, quiet, resolve=True)
    open_complaint = await complaint(client, disputed, resolve=False)

    before = await entries(client)
    [quiet_opened] = [
        e
        for e in before
        if e["case_key"] == str(quiet.case_id) and e["event_type"] == "case.opened"
    ]
    head_before = (await client.get("/v1/audit/tree-head")).json()
    proof_before = (await client.get(f"/v1/audit/proof/{quiet_opened['seq']}")).json()

    event = erasure(debtor_id, quiet, violated, disputed)
    await feed.send(event, key=debtor_id)

    after = {e["seq"]: e for e in await entries(client)}
    purged_keys = {e["case_key"] for e in after.values() if e["purged_at"] is not None}
    # Only the case no legal claim needs: the violation and the open complaint keep theirs,
    # and so do the debtor's preferences (they bear on the violation); strangers are untouched.
    assert purged_keys == {str(quiet.case_id)}
    quiet_entries = [e for e in after.values() if e["case_key"] == str(quiet.case_id)]
    assert quiet_entries
    assert all(e["envelope"] is None for e in quiet_entries)
    for kept in (violated, disputed, stranger):
        assert all(
            e["purged_at"] is None for e in after.values() if e["case_key"] == str(kept.case_id)
        )
    [purge] = [e for e in after.values() if e["event_type"] == "compliance.purged"]
    assert purge["envelope"]["causation_id"] == str(
        next(e for e in after.values() if e["event_type"] == "debtor.erased")["envelope"][
            "event_id"
        ]
    )
    purged_seqs = sorted(e["seq"] for e in quiet_entries)
    assert purge["envelope"]["payload"]["entries"] == len(purged_seqs)
    assert purge["envelope"]["payload"]["reason"] == "erasure"
    [erased_entry] = [e for e in after.values() if e["event_type"] == "debtor.erased"]
    assert erased_entry["purged_at"] is None  # the proof the request was honoured stays

    verified = (await client.get("/v1/audit/verify")).json()
    assert verified["ok"] is True, verified
    # The proof issued before the erasure still proves the same leaf under the same root.
    again = await client.get(
        f"/v1/audit/proof/{quiet_opened['seq']}", params={"tree_size": head_before["tree_size"]}
    )
    assert again.json() == proof_before
    assert merkle.verify_inclusion(
        leaf=bytes.fromhex(proof_before["leaf_hash"]),
        index=proof_before["leaf_index"],
        tree_size=proof_before["tree_size"],
        proof=[bytes.fromhex(h) for h in proof_before["audit_path"]],
        expected_root=bytes.fromhex(head_before["root_hash"]),
    )

    stored = await raw_complaints(app)
    assert stored[closed_complaint][0] == ""
    assert stored[open_complaint][0] == COMPLAINT  # still being handled: a legal claim
    async with app.state.runtime.sessions() as s:
        notes = (
            await s.execute(sa.text("SELECT note FROM complaint_changes WHERE note LIKE '%Li Na%'"))
        ).all()
    assert notes == []

    # A copy of the event (a redelivery under a new offset) changes nothing more.
    await feed.send(event, key=debtor_id)
    assert len([e for e in await entries(client) if e["event_type"] == "compliance.purged"]) == 1


async def test_without_legal_claims_the_preferences_entries_go_too(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    await feed.send(outcome(case, local(10)), key=case.case_id)
    preferences = DebtorPreferencesChanged(
        debtor_id=case.debtor_id,
        opted_out_channels=["sms"],
        consents=[],
        changed_by="collector:li",
        reason="asked",
        changed_at=local(11),
    )
    await feed.send(preferences, key=case.debtor_id)
    await feed.send(erasure(case.debtor_id, case), key=case.debtor_id)
    found = await entries(client)
    purged = {(e["case_key"], e["event_type"]) for e in found if e["purged_at"] is not None}
    assert purged == {
        (str(case.case_id), "case.opened"),
        (str(case.case_id), "contact.outcome"),
        (str(case.debtor_id), "debtor.preferences_changed"),
    }
    assert (await client.get("/v1/audit/verify")).json()["ok"] is True


async def test_an_erasure_naming_another_tenants_debtor_is_logged_not_applied(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    with caplog.at_level(logging.WARNING, logger="services.compliance.privacy"):
        await feed.send(erasure(case.debtor_id, case), key=case.debtor_id, tenant="globex")
    assert "names a debtor or case of tenant default: logged, not applied" in caplog.text
    found = await entries(client)
    assert all(e["purged_at"] is None for e in found)
    assert [e["event_type"] for e in found] == ["case.opened"]  # globex's entry is globex's
    assert not [e for e in found if e["event_type"] == "compliance.purged"]
