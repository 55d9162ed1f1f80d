"""`debtor.erased` in the contact service, on SQLite and PostgreSQL: every live attempt of the
debtor is withdrawn (DSR-ERASED), none is ever planned again (not even for a case whose
`case.opened` arrives late), hold reasons are blanked, and an erasure naming another tenant's
debtor is dead-lettered. The debtor export shows what contact holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi import FastAPI

from services.contact.models import ContactHold, ContactPreferences
from shared.contracts import (
    CaseScored,
    DebtorErased,
    DebtorPreferencesChanged,
    HoldKind,
    HoldPlaced,
    HoldReleased,
    RiskTier,
)
from tests.integration.test_contact_planning import LATE_EVENING, events
from tests.integration.test_contact_tenancy import (
    app,
    attempts_of,
    client,
    dead_letter_errors,
    deliver,
    message,
    open_case,
    published,
    url,
)

__all__ = ["app", "url"]  # fixtures

HOLD_REASON = "debtor's son says she is in hospital"


def erased(
    debtor_id: uuid.UUID, *case_ids: uuid.UUID, retained: dict[str, str] | None = None
) -> DebtorErased:
    return DebtorErased(
        debtor_id=debtor_id,
        case_ids=list(case_ids),
        request_ref="DSR-7",
        erased_fields=["debtor.name", "debtor.phone"],
        retained={"payments": "financial records"} if retained is None else retained,
        erased_at=datetime.now(UTC),
    )


async def holds_of(app: FastAPI, debtor_id: uuid.UUID) -> list[ContactHold]:
    async with app.state.runtime.sessions() as s:
        rows = await s.scalars(sa.select(ContactHold).where(ContactHold.debtor_id == debtor_id))
        return list(rows.all())


async def test_an_erasure_withdraws_every_attempt_and_nothing_is_planned_again(
    app: FastAPI,
) -> None:
    opened, _ = await open_case(app, "acme")
    debtor_id, case_id = opened.debtor_id, opened.case_id
    hold = HoldPlaced(
        hold_id=uuid.uuid4(),
        case_id=case_id,
        debtor_id=debtor_id,
        kind=HoldKind.DISPUTE,
        reason=HOLD_REASON,
        placed_by="collector:li",
        starts_at=LATE_EVENING,
    )
    released = HoldReleased(
        hold_id=hold.hold_id, case_id=case_id, released_by="collector:li", released_at=LATE_EVENING
    )
    preferences = DebtorPreferencesChanged(
        debtor_id=debtor_id,
        opted_out_channels=["sms"],
        consents=[],
        changed_by="collector:li",
        reason="asked",
        changed_at=LATE_EVENING,
    )
    assert (
        await deliver(
            app,
            message(hold, tenant="acme", key=case_id),
            message(released, tenant="acme", key=case_id),
            message(preferences, tenant="acme", key=debtor_id),
        )
        == ["processed"] * 3
    )
    live = [a for a in await attempts_of(app, case_id) if a.status == "planned"]
    assert len(live) == 1  # planned again once the hold was released
    async with client(app, tenant="acme") as acme:
        before = (await acme.get(f"/v1/debtors/{debtor_id}/export")).json()
    assert [a["status"] for a in before["attempts"]] == ["cancelled", "planned"]
    assert [h["reason"] for h in before["holds"]] == [HOLD_REASON]

    # Cases names a second case of the debtor contact has not heard of yet.
    late_opened, late_scored = events(dpd=10)
    late_opened = late_opened.model_copy(update={"debtor_id": debtor_id})
    event = erased(debtor_id, case_id, late_opened.case_id)
    assert await deliver(app, message(event, tenant="acme", key=debtor_id)) == ["processed"]

    assert [a.status for a in await attempts_of(app, case_id)] == ["cancelled", "cancelled"]
    cancelled = [e for e in await published(app, "contact.cancelled") if e["tenant"] == "acme"]
    last = cancelled[-1]
    assert last["payload"]["rule_ids"] == ["DSR-ERASED"]
    assert last["payload"]["attempt_id"] == str(live[0].id)
    assert "DSR-7" in last["payload"]["reason"]
    assert [h.reason for h in await holds_of(app, debtor_id)] == [""]

    # Never again: a new score, a late case.opened of the other case, a released hold.
    rescored = CaseScored(
        case_id=case_id,
        score_id=uuid.uuid4(),
        model_id="priority-rule",
        model_version="1",
        priority=9.0,
        risk_tier=RiskTier.HIGH,
        days_past_due=40,
        amount_outstanding="500",
        currency="CNY",
        scored_at=datetime.now(UTC),
    )
    planned_before = len(await published(app, "contact.planned"))
    assert (
        await deliver(
            app,
            message(rescored, tenant="acme", key=case_id),
            message(late_opened, tenant="acme", key=late_opened.case_id),
            message(late_scored, tenant="acme", key=late_opened.case_id),
            message(released, tenant="acme", key=case_id),
        )
        == ["processed"] * 4
    )
    assert len(await published(app, "contact.planned")) == planned_before
    assert await attempts_of(app, late_opened.case_id) == []
    assert all(a.status == "cancelled" for a in await attempts_of(app, case_id))

    async with client(app, tenant="acme") as acme:
        after = (await acme.get(f"/v1/debtors/{debtor_id}/export")).json()
    assert {c["case_id"] for c in after["cases"]} == {str(case_id), str(late_opened.case_id)}
    assert all(c["closed_at"] is not None for c in after["cases"])
    # Retained records in cases: the opt-outs past contacts relied on stay.
    assert after["preferences"]["opted_out_channels"] == ["sms"]


async def test_without_retained_records_the_preferences_go_too(app: FastAPI) -> None:
    opened, _ = await open_case(app, "acme")
    preferences = DebtorPreferencesChanged(
        debtor_id=opened.debtor_id,
        opted_out_channels=["sms"],
        consents=["agency:Far East"],
        changed_by="collector:li",
        reason="asked",
        changed_at=LATE_EVENING,
    )
    event = erased(opened.debtor_id, opened.case_id, retained={})
    assert await deliver(
        app,
        message(preferences, tenant="acme", key=opened.debtor_id),
        message(event, tenant="acme", key=opened.debtor_id),
    ) == ["processed", "processed"]
    async with app.state.runtime.sessions() as s:
        assert await s.get(ContactPreferences, opened.debtor_id) is None


async def test_an_erasure_naming_another_tenants_debtor_is_dead_lettered(app: FastAPI) -> None:
    acme_case, _ = await open_case(app, "acme")
    foreign = erased(acme_case.debtor_id, acme_case.case_id)
    assert await deliver(app, message(foreign, tenant="globex", key=acme_case.debtor_id)) == [
        "dead_lettered"
    ]
    [error] = await dead_letter_errors(app)
    assert "PermanentMessageError" in error
    assert "another tenant" in error
    assert [a.status for a in await attempts_of(app, acme_case.case_id)] == ["planned"]
    assert await published(app, "contact.cancelled") == []


async def test_the_debtor_export_is_scoped_and_tenant_filtered(app: FastAPI) -> None:
    opened, _ = await open_case(app, "acme")
    path = f"/v1/debtors/{opened.debtor_id}/export"
    async with client(app, tenant="acme") as acme:
        export = await acme.get(path)
        assert export.status_code == 200, export.text
        body = export.json()
        assert [c["case_id"] for c in body["cases"]] == [str(opened.case_id)]
        assert [a["status"] for a in body["attempts"]] == ["planned"]
        assert (await acme.get(f"/v1/debtors/{uuid.uuid4()}/export")).status_code == 404
    async with client(app, tenant="globex") as globex:
        assert (await globex.get(path)).status_code == 404
    async with client(app, kind="crm", tenant="acme") as crm:
        forbidden = await crm.get(path)
        assert forbidden.status_code == 403
        assert "privacy:requests" in forbidden.text
