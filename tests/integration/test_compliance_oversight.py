"""Compliance's own judgement, on a real database: every contact re-checked from the events
alone (hours, holds, opt-outs, consent, caps, late arrivals), complaints with SLA clocks and
campaigns, prohibited language, QA sampling, reports and the regulator export with proofs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.compliance import merkle
from services.compliance.app import create_app
from services.compliance.cli import verify_directory
from services.compliance.handlers import make_handlers
from services.compliance.settings import ComplianceSettings
from shared.bus import MessageProcessor
from shared.contracts import (
    CaseOpened,
    ContactOutcome,
    ContactPlanned,
    DebtorPreferencesChanged,
    EventPayload,
    HoldKind,
    HoldPlaced,
    OutcomeResult,
    build_envelope,
)
from shared.messaging import outbox
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows
from tests.integration.test_message_processor import record

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 4)


def local(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("compliance")


@pytest.fixture
async def app(url: str) -> AsyncIterator[FastAPI]:
    application = create_app(ComplianceSettings(database_url=url, enable_bus=False))
    application.state.clock = lambda: local(12, 0, date(2026, 3, 10))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://compliance"
    ) as http:
        yield http


class Feed:
    """Delivers events to compliance's consumer as Kafka would (inbox dedupe included)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.offset = 0
        self.processor = MessageProcessor(
            consumer_name="compliance",
            handlers=make_handlers(pii_key=b"test-key"),
            max_retries=0,
            retry_backoff_ms=0,
        )

    async def send(
        self,
        payload: EventPayload,
        *,
        key: uuid.UUID,
        at: datetime | None = None,
        tenant: str = "default",
    ) -> bytes:
        envelope = build_envelope(
            payload, key=str(key), producer="test", correlation_id="c", tenant=tenant
        )
        if at is not None:
            envelope = envelope.model_copy(update={"occurred_at": at})
        value = envelope.to_bytes()
        await self.redeliver(value)
        return value

    async def redeliver(self, value: bytes) -> None:
        async with self.app.state.runtime.sessions() as s, s.begin():
            delivery = await self.processor.process(s, record(value, self.offset))
            assert delivery.outcome in ("processed", "duplicate"), delivery
        self.offset += 1


def opened(*, opted_out: list[str] | None = None, consents: list[str] | None = None) -> CaseOpened:
    return CaseOpened(
        case_id=uuid.uuid4(),
        account_id="A-1",
        debtor_id=uuid.uuid4(),
        debtor_time_zone="Asia/Shanghai",
        product="card",
        currency="CNY",
        principal="500",
        interest="0",
        fees="0",
        amount_outstanding="500",
        due_date=date(2026, 2, 1),
        days_past_due=31,
        industry_risk=5,
        opened_at=local(9, 0, date(2026, 3, 1)),
        opted_out_channels=opted_out or [],
        consents=consents or [],
    )


def outcome(
    case: CaseOpened,
    at: datetime,
    *,
    channel: str = "call",
    result: OutcomeResult = OutcomeResult.RIGHT_PARTY_CONTACT,
    agency: str | None = None,
) -> ContactOutcome:
    return ContactOutcome(
        outcome_id=uuid.uuid4(),
        attempt_id=uuid.uuid4(),
        case_id=case.case_id,
        channel=channel,
        result=result,
        occurred_at=at,
        agency=agency,
        dialer="dialer-1",
    )


def planned(case: CaseOpened, at: datetime, *, channel: str = "call") -> ContactPlanned:
    return ContactPlanned(
        attempt_id=uuid.uuid4(),
        case_id=case.case_id,
        debtor_id=case.debtor_id,
        channel=channel,
        template="t",
        stage="early",
        planned_at=at,
        local_planned_at=at.astimezone(SHANGHAI).isoformat(),
        time_zone="Asia/Shanghai",
        window_rule_id="CN-HOURS",
        priority=1.0,
    )


def dispute(case: CaseOpened, starts_at: datetime) -> HoldPlaced:
    return HoldPlaced(
        hold_id=uuid.uuid4(),
        case_id=case.case_id,
        debtor_id=case.debtor_id,
        kind=HoldKind.DISPUTE,
        reason="not my debt",
        placed_by="agent",
        starts_at=starts_at,
    )


async def violations(client: httpx.AsyncClient, case: CaseOpened) -> list[dict[str, Any]]:
    response = await client.get("/v1/violations", params={"case_id": str(case.case_id)})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["violations"]
    return found


async def published(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    async with app.state.runtime.sessions() as s:
        values = (
            (await s.execute(sa.select(outbox.c.value).where(outbox.c.event_type == event_type)))
            .scalars()
            .all()
        )
    return [json.loads(v)["payload"] for v in values]


async def test_a_call_at_23_local_is_a_violation_once_with_its_evidence(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    lawful = outcome(case, local(10))
    await feed.send(lawful, key=case.case_id)
    late = await feed.send(outcome(case, local(23)), key=case.case_id)
    await feed.redeliver(late)  # the same message again: one entry, one finding
    found = await violations(client, case)
    assert [(v["rule_id"], v["severity"]) for v in found] == [("CN-HOURS", "major")]
    assert "22:00" in found[0]["reason"]
    assert await count_rows(app.state.runtime.engine, "audit_entries") == 3
    async with app.state.runtime.sessions() as s:
        seqs = (await s.execute(sa.text("SELECT seq, event_type FROM audit_entries"))).all()
    late_seq = max(seq for seq, kind in seqs if kind == "contact.outcome")
    assert late_seq in found[0]["evidence_seqs"]
    [event] = await published(app, "violation.detected")
    assert (event["rule_id"], event["hold_requested"]) == ("CN-HOURS", False)


async def test_a_hold_arriving_late_still_judges_the_contact_but_a_backdated_one_does_not(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    # The dialer's report of a 10:00 call reaches compliance before the dispute hold that
    # cases recorded at 09:30: the hold's arrival re-judges the call.
    call = outcome(case, local(10))
    await feed.send(call, key=case.case_id)
    assert await violations(client, case) == []
    await feed.send(dispute(case, local(9, 30)), key=case.case_id, at=local(9, 30))
    found = await violations(client, case)
    assert [(v["rule_id"], v["severity"]) for v in found] == [("HOLD-DISPUTE", "critical")]
    [event] = await published(app, "violation.detected")
    assert event["hold_requested"] is True  # critical: cases holds the case for review

    # A hardship hold recorded on the 5th but back-dated to the 3rd does not make a call on
    # the 4th unlawful: nobody could have known.
    other = opened()
    await feed.send(other, key=other.case_id)
    await feed.send(outcome(other, local(11)), key=other.case_id)
    backdated = HoldPlaced(
        hold_id=uuid.uuid4(),
        case_id=other.case_id,
        debtor_id=other.debtor_id,
        kind=HoldKind.HARDSHIP,
        reason="lost job",
        placed_by="agent",
        starts_at=local(9, 0, date(2026, 3, 3)),
    )
    await feed.send(backdated, key=other.case_id, at=local(9, 0, date(2026, 3, 5)))
    assert await violations(client, other) == []


async def test_opt_outs_consent_third_parties_and_caps(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    await feed.send(outcome(case, local(9), channel="sms"), key=case.case_id)
    await feed.send(
        DebtorPreferencesChanged(
            debtor_id=case.debtor_id,
            opted_out_channels=["sms"],
            consents=[],
            changed_by="debtor",
            reason="stop texting me",
            changed_at=local(12),
        ),
        key=case.debtor_id,
    )
    await feed.send(outcome(case, local(10, 0, date(2026, 3, 5)), channel="sms"), key=case.case_id)
    found = await violations(client, case)
    assert [v["rule_id"] for v in found] == ["OPT-OUT"]  # the 09:00 SMS came before

    second = opened()
    await feed.send(second, key=second.case_id)
    await feed.send(outcome(second, local(10), agency="Far East Recovery"), key=second.case_id)
    await feed.send(
        outcome(second, local(10, 30, date(2026, 3, 5)), result=OutcomeResult.THIRD_PARTY),
        key=second.case_id,
    )
    found = await violations(client, second)
    assert sorted(v["rule_id"] for v in found) == ["CN-CONSENT-23", "CN-THIRD-PARTY"]

    # cn: three connected calls a day; the fourth is over the cap, and its evidence names
    # the three before it.
    third = opened()
    await feed.send(third, key=third.case_id)
    for hour in (9, 11, 14, 16):
        await feed.send(outcome(third, local(hour, 0, date(2026, 3, 6))), key=third.case_id)
    [over] = await violations(client, third)
    assert over["rule_id"] == "CN-CALLS-DAY"
    assert len(over["evidence_seqs"]) == 4


async def test_a_contact_before_its_case_is_judged_when_the_case_arrives(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(outcome(case, local(7, 30)), key=case.case_id)
    assert await violations(client, case) == []
    await feed.send(case, key=case.case_id)
    assert [v["rule_id"] for v in await violations(client, case)] == ["CN-HOURS"]


async def test_a_planned_attempt_outside_hours_is_flagged(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    late = planned(case, local(22, 15))
    await feed.send(late, key=case.case_id)
    [found] = await violations(client, case)
    assert (found["rule_id"], found["subject"]) == ("CN-HOURS", f"planned:{late.attempt_id}")


async def test_a_plan_withdrawn_after_an_opt_out_or_a_hold_is_no_violation_but_a_call_is(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Contact schedules a letter at 22:10 for 08:00 the next morning; at 22:11 the debtor opts
    out of letters and a dispute hold is placed (contact withdraws the plan). The plan was
    lawful when it was made. A letter sent at 08:00 anyway is the violation."""
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    scheduled, morning = local(22, 10), local(8, 0, DAY + timedelta(days=1))
    plan = planned(case, morning, channel="letter")
    changed = DebtorPreferencesChanged(
        debtor_id=case.debtor_id,
        opted_out_channels=["letter"],
        consents=[],
        changed_by="crm",
        reason="asked",
        changed_at=local(22, 11),
    )
    # Either order of arrival: the opt-out and the hold re-judge the plan when they come later.
    await feed.send(changed, key=case.case_id, at=local(22, 11))
    await feed.send(plan, key=case.case_id, at=scheduled)
    await feed.send(dispute(case, local(22, 11)), key=case.case_id, at=local(22, 11))
    assert await violations(client, case) == []

    sent = outcome(case, morning, channel="letter", result=OutcomeResult.NO_ANSWER)
    await feed.send(sent, key=case.case_id, at=morning)
    found = {(v["rule_id"], v["subject"]) for v in await violations(client, case)}
    assert found == {
        ("OPT-OUT", f"outcome:{sent.outcome_id}"),
        ("HOLD-DISPUTE", f"outcome:{sent.outcome_id}"),
    }

    # Scheduled after the opt-out, the same plan is one.
    late = plan.model_copy(update={"attempt_id": uuid.uuid4()})
    await feed.send(late, key=case.case_id, at=local(22, 12))
    assert {
        v["rule_id"]
        for v in await violations(client, case)
        if v["subject"] == f"planned:{late.attempt_id}"
    } == {"OPT-OUT", "HOLD-DISPUTE"}


async def test_complaints_hold_run_clocks_and_find_campaigns(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    now = local(12, 0, date(2026, 3, 10))
    body = {
        "debtor_id": str(uuid.uuid4()),
        "case_id": str(uuid.uuid4()),
        "channel": "phone",
        "category": "harassment",
        "text": "催收员一天打了十几个电话，还打给我的同事和父母，请立即停止。",
        "received_by": "agent-wang",
    }
    created = await client.post("/v1/complaints", json=body)
    assert created.status_code == 201, created.text
    complaint = created.json()
    assert (complaint["status"], complaint["open"]) == ("received", True)
    assert complaint["sla"]["first_response_due"] == (now + timedelta(hours=2)).isoformat().replace(
        "+00:00", "Z"
    )
    [opened_event] = await published(app, "complaint.opened")
    assert opened_event["complaint_id"] == complaint["complaint_id"]
    cid = complaint["complaint_id"]

    bad = await client.post(
        f"/v1/complaints/{cid}/status", json={"status": "investigating", "changed_by": "x"}
    )
    assert bad.status_code == 409, bad.text
    assert "received" in bad.json()["detail"]
    assert "investigating" in bad.json()["detail"]
    # Acknowledged three hours after receipt: the first-response clock was breached.
    app.state.clock = lambda: now + timedelta(hours=3)
    ack = await client.post(
        f"/v1/complaints/{cid}/status", json={"status": "acknowledged", "changed_by": "lead"}
    )
    assert ack.status_code == 200, ack.text
    assert ack.json()["sla"]["first_response_met"] is False
    assert ack.json()["sla"]["breached"] == ["first_response"]
    done = await client.post(
        f"/v1/complaints/{cid}/status",
        json={"status": "resolved", "changed_by": "lead", "note": "agent retrained"},
    )
    assert (done.json()["open"], done.json()["sla"]["resolution_met"]) == (False, True)
    assert [h["status"] for h in done.json()["history"]] == ["received", "acknowledged", "resolved"]
    changes = await published(app, "complaint.status_changed")
    assert [c["open"] for c in changes] == [True, False]
    breached = await client.get("/v1/complaints", params={"breached": "true"})
    assert [c["complaint_id"] for c in breached.json()["complaints"]] == [cid]

    invalid = await client.post("/v1/complaints", json={**body, "category": "rude"})
    assert invalid.status_code == 422
    assert await count_rows(app.state.runtime.engine, "complaints") == 1

    # The same text from five debtors, lightly edited: a campaign.
    template = (
        "本人于2023年在贵平台借款，现因失业无力偿还。贵司催收人员多次拨打我的电话并联系我的家人，"
        "严重影响生活，请立即停止骚扰并删除通讯录信息，否则将向监管部门投诉。"
    )
    ids = []
    for i in range(5):
        text = template.replace("2023", str(2019 + i)) + ("!" * i)
        made = await client.post(
            "/v1/complaints",
            json={**body, "debtor_id": str(uuid.uuid4()), "text": text, "category": "privacy"},
        )
        ids.append(made.json())
    assert ids[3]["campaign_id"] is None
    assert ids[4]["campaign_id"] is not None
    assert ids[4]["similar_complaints"] == 4
    first = (await client.get(f"/v1/complaints/{ids[0]['complaint_id']}")).json()
    assert first["campaign_id"] == ids[4]["campaign_id"]


async def test_transcripts_and_templates_are_checked(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    threat = await client.post(
        "/v1/language/transcripts",
        json={
            "case_id": str(case.case_id),
            "turns": [
                {"speaker": "agent", "text": "你的欠款5000元今天必须还。"},
                {"speaker": "debtor", "text": "我没钱。"},
                {"speaker": "agent", "text": "不还钱就让你坐 牢，还要告訴你的單位。"},
            ],
        },
    )
    assert threat.status_code == 200, threat.text
    review = threat.json()
    assert review["ok"] is False
    assert {h["category"] for h in review["hits"]} >= {
        "false_legal_claim",
        "third_party_disclosure",
    }
    assert "identity_confirmed" in review["steps_missing"]
    rule_ids = {v["rule_id"] for v in await violations(client, case)}
    assert {"CN-CONDUCT", "CN-THIRD-PARTY"} <= rule_ids
    [reviewed] = await published(app, "transcript.reviewed")
    assert reviewed["ok"] is False
    assert len(reviewed["text_sha256"]) == 64
    # The matched phrases are evidence; the transcript itself (personal data) is not kept.
    assert "我没钱" not in json.dumps(reviewed, ensure_ascii=False)

    polite = await client.post(
        "/v1/language/templates",
        json={"text": "【某某银行】您好，我是催收专员，工号1234。您的账户已逾期，请及时还款。"},
    )
    assert polite.status_code == 200, polite.text
    assert (polite.json()["ok"], polite.json()["identified"]) == (True, True)
    empty = await client.post("/v1/language/transcripts", json={"turns": []})
    assert empty.status_code == 422


async def test_qa_report_and_regulator_export(app: FastAPI, client: httpx.AsyncClient) -> None:
    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    calls = [outcome(case, local(h, 0, date(2026, 3, 2 + h % 5))) for h in range(9, 21)]
    calls.append(outcome(case, local(23, 0, date(2026, 3, 8))))
    for call in calls:
        await feed.send(call, key=case.case_id)
    period = {"period_start": "2026-03-01T00:00:00Z", "period_end": "2026-03-10T00:00:00Z"}
    plan = (await client.get("/v1/qa/plan", params=period)).json()
    assert plan["contacts_considered"] == 13
    qa = [a for a in plan["assignments"] if a["reviewer_kind"] == "qa"]
    assert len(qa) == 2  # ceil(10% of 13), one month
    subject = qa[0]["subject"]
    review = {
        "subject": subject,
        "reviewer_kind": "qa",
        "reviewer": "qa-zhao",
        "period": "2026-03",
        "score": 40,
        "passed": False,
        "findings": [],
    }
    assert (await client.post("/v1/qa/reviews", json=review)).status_code == 422
    review["findings"] = ["did not confirm identity"]
    assert (await client.post("/v1/qa/reviews", json=review)).status_code == 201
    unknown = {**review, "subject": f"outcome:{uuid.uuid4()}"}
    assert (await client.post("/v1/qa/reviews", json=unknown)).status_code == 404

    # Through the 10th: the review made today counts too.
    through = {**period, "period_end": "2026-03-11T00:00:00Z"}
    summary = (await client.get("/v1/reports/summary", params=through)).json()
    assert (summary["contacts"], summary["accounts_worked"]) == (13, 1)
    assert summary["violations_by_rule"] == [{"key": "CN-HOURS", "count": 1}]
    assert (summary["qa_reviews"], summary["qa_pass_rate"]) == (1, 0.0)

    export = await client.get("/v1/reports/export", params={"case_id": str(case.case_id)})
    assert export.status_code == 200, export.text
    body = export.json()
    assert len(body["contacts"]) == 13
    allowed = [c for c in body["contacts"] if c["allowed"]]
    [refused] = [c for c in body["contacts"] if not c["allowed"]]
    assert len(allowed) == 12
    assert "cn 2026.11" in allowed[0]["explanation"]
    assert refused["findings"][0].startswith("CN-HOURS")
    root = bytes.fromhex(body["root_hash"])
    async with app.state.runtime.sessions() as s:
        bodies = dict((await s.execute(sa.text("SELECT seq, body FROM audit_entries"))).all())
    for contact in body["contacts"]:
        for evidence in contact["evidence"]:
            assert merkle.verify_inclusion(
                leaf=merkle.leaf_hash(bytes(bodies[evidence["seq"]])),
                index=evidence["leaf_index"],
                tree_size=body["tree_size"],
                proof=[bytes.fromhex(p) for p in evidence["audit_path"]],
                expected_root=root,
            )
    as_csv = await client.get("/v1/reports/export", params={**period, "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.strip().splitlines()
    assert lines[0].startswith("subject,case_id,channel")
    assert len(lines) == 14
    missing = await client.get("/v1/reports/export")
    assert missing.status_code == 422


async def test_the_policy_in_force_at_the_contact_is_the_one_applied(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from shared.contracts import ContactPolicyChanged

    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)
    await feed.send(outcome(case, local(12, 30)), key=case.case_id)  # before the policy
    policy = ContactPolicyChanged(
        version=1,
        packs=["cn"],
        policy={
            "packs": ["cn"],
            "quiet": [{"start": "12:00:00", "end": "13:30:00"}],
            "window_start": "09:00:00",
            "caps": {},
            "holidays": [],
            "changed_by": "officer",
            "reason": "lunch",
        },
        changed_by="officer",
        reason="lunch",
        changed_at=local(8, 0, date(2026, 3, 5)),
    )
    await feed.send(policy, key=uuid.uuid4())
    await feed.send(outcome(case, local(12, 30, date(2026, 3, 5))), key=case.case_id)
    await feed.send(outcome(case, local(8, 30, date(2026, 3, 6))), key=case.case_id)
    found = await violations(client, case)
    assert sorted((v["rule_id"], v["severity"]) for v in found) == [
        ("CN-HOURS", "major"),  # 08:30 is outside the tenant's 09:00 start (the pack's rule id)
        ("POLICY-QUIET", "minor"),
    ]


async def test_retention_purges_content_keeps_hashes_and_proofs(
    app: FastAPI, client: httpx.AsyncClient, url: str, tmp_path: Path
) -> None:
    feed = Feed(app)
    old, recent, disputed = opened(), opened(), opened()
    for case in (old, recent, disputed):
        await feed.send(case, key=case.case_id)
        await feed.send(outcome(case, local(10)), key=case.case_id)
    # Activity on `recent` years later keeps it; `disputed` has an open complaint.
    later = local(10, 0, date(2029, 6, 1))
    await feed.send(outcome(recent, later), key=recent.case_id, at=later)
    for case in (old, recent, disputed):  # entries take the event's time as occurred_at
        async with app.state.runtime.sessions() as s, s.begin():
            await s.execute(
                sa.text(
                    "UPDATE audit_entries SET occurred_at = :at WHERE case_key = :key "
                    "AND occurred_at < :cut"
                ),
                {"at": local(10), "key": str(case.case_id), "cut": later},
            )
    complaint = await client.post(
        "/v1/complaints",
        json={
            "debtor_id": str(disputed.debtor_id),
            "case_id": str(disputed.case_id),
            "channel": "letter",
            "category": "not_my_debt",
            "text": "This is not my debt and never was.",
            "received_by": "mailroom",
        },
    )
    assert complaint.status_code == 201
    head_before = (await client.get("/v1/audit/tree-head")).json()
    proof_before = (await client.get("/v1/audit/proof/2")).json()
    app.state.clock = lambda: local(12, 0, date(2029, 12, 1))  # > 3 years after March 2026

    dry = (await client.post("/v1/audit/purge", json={"dry_run": True})).json()
    assert (dry["entries"], dry["dry_run"], dry["purge_id"]) == (2, True, None)
    assert dry["held_cases"] == 1
    assert (await client.get("/v1/audit/tree-head")).json() == head_before

    done = (await client.post("/v1/audit/purge", json={})).json()
    assert done["entries"] == 2
    entries = (await client.get("/v1/audit/entries", params={"limit": 1000})).json()["entries"]
    purged = [e for e in entries if e["purged_at"] is not None]
    assert len(purged) == 2
    assert all(e["envelope"] is None for e in purged)
    # Only the case quiet for over three years: `recent` was active again, `disputed` is held.
    assert {e["case_key"] for e in purged} == {str(old.case_id)}
    verified = (await client.get("/v1/audit/verify")).json()
    assert verified["ok"] is True, verified
    # The tree over the old entries is unchanged: the old proof still holds.
    after = await client.get("/v1/audit/proof/2", params={"tree_size": head_before["tree_size"]})
    assert after.json() == proof_before
    [purge] = [e for e in entries if e["event_type"] == "compliance.purged"]
    assert purge["envelope"]["payload"]["reason"] == "retention"
    again = (await client.post("/v1/audit/purge", json={})).json()
    assert again["entries"] == 0
    # The standalone verifier accepts the export too (purged entries travel as their leaf).
    out = tmp_path / "export"
    exported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.compliance", "export", "--out", str(out)],
        env={**os.environ, "COMPLIANCE_DATABASE_URL": url, "COMPLIANCE_LOG_JSON": "false"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert verify_directory(out) == []
    lines = (out / "entries.jsonl").read_text().splitlines()
    forged = [json.loads(line) for line in lines]
    victim = next(e for e in forged if e["body"] is not None and e["event_type"] == "case.opened")
    victim["purged_leaf"], victim["body"] = "00" * 32, None
    (out / "entries.jsonl").write_text("\n".join(json.dumps(e) for e in forged) + "\n")
    assert any(f"entry {victim['seq']}" in problem for problem in verify_directory(out))

    # Content removed without a logged purge is tampering, found at its entry.
    async with app.state.runtime.sessions() as s, s.begin():
        seq = max(
            e["seq"] for e in entries if e["purged_at"] is None and e["event_type"] == "case.opened"
        )
        body = (
            await s.execute(sa.text("SELECT body FROM audit_entries WHERE seq = :s"), {"s": seq})
        ).scalar_one()
        from services.compliance import domain

        await s.execute(
            sa.text("UPDATE audit_entries SET body = :b WHERE seq = :s"),
            {"b": domain.purged_body(bytes(body)), "s": seq},
        )
    broken = (await client.get("/v1/audit/verify")).json()
    assert (broken["ok"], broken["first_broken_seq"]) == (False, seq)
    assert "no logged purge" in broken["problem"]


async def test_a_fault_in_the_recheck_never_costs_the_log_its_entry(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from services.compliance import service

    feed = Feed(app)
    case = opened()
    await feed.send(case, key=case.case_id)

    async def broken(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("a bug in the re-check")

    monkeypatch.setattr(service, "observe", broken)
    await feed.send(outcome(case, local(23)), key=case.case_id)
    assert await count_rows(app.state.runtime.engine, "audit_entries") == 2
    assert "failed; the event is logged, not judged" in caplog.text
    assert (await client.get("/v1/audit/verify")).json()["ok"] is True
