"""End to end over TCP: CRM -> cases -> scoring -> contact -> dialer topic, all audited.

Runs once on SQLite and once on PostgreSQL (four databases), with the real embedded broker and
the four services as separate processes. A plain aiokafka consumer plays the dialer.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.stack import LocalStack
from tests.auth_support import headers as auth_headers
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.e2e

ZONES = [
    "Asia/Shanghai",
    "Asia/Urumqi",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kathmandu",
]


def new_case(i: int, zone: str) -> dict[str, Any]:
    return {
        "account_id": f"E2E-{uuid.uuid4().hex[:10]}-{i}",
        "debtor": {"name": f"Debtor {i}", "time_zone": zone},
        "product": "consumer_loan",
        "currency": "CNY",
        "principal": f"{1000 + 997 * i}.00",
        "interest": "12.34",
        "due_date": (date.today() - timedelta(days=(i * 9) % 120 + 1)).isoformat(),
        "industry_risk": (i * 7) % 100,
        "risk_features": {
            "RevolvingUtilizationOfUnsecuredLines": (i % 10) / 9,
            "age": 22 + (i * 5) % 50,
            "NumberOfTime30-59DaysPastDueNotWorse": i % 3,
            "DebtRatio": 0.3,
            "MonthlyIncome": None if i % 4 == 0 else 3000 + 250 * i,
            "NumberOfTimes90DaysLate": i % 2,
        },
    }


async def wait_for(
    client: httpx.AsyncClient, url: str, *, ok: Any = None, timeout_s: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            if ok is None or ok(body):
                return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready: {response.status_code} {response.text[:300]}")
        await asyncio.sleep(0.2)


def assert_lawful(attempt: dict[str, Any]) -> None:
    local = datetime.fromisoformat(attempt["planned_at"]).astimezone(ZoneInfo(attempt["time_zone"]))
    assert clock(8, 0) <= local.time() < clock(22, 0), attempt
    assert attempt["local_planned_at"] == local.isoformat()


async def test_case_flows_to_a_lawful_planned_contact_and_an_intact_audit_chain(
    stack: LocalStack,
) -> None:
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        posted = []
        for i, zone in enumerate(ZONES * 2):
            response = await client.post(
                f"{stack.url('cases')}/v1/cases",
                json=new_case(i, zone),
                headers={"Idempotency-Key": f"e2e-{uuid.uuid4()}", "X-Correlation-ID": f"corr-{i}"},
            )
            assert response.status_code == 201, response.text
            posted.append(response.json())
        case_ids = {c["id"] for c in posted}

        dialer = await read_topic(
            stack.broker.bootstrap_servers,
            "contact.events",
            until=len(posted),
            timeout_s=60,
            group_id=f"dialer-{uuid.uuid4().hex[:6]}",
        )
        planned = [m for m in dialer if m["type"] == "contact.planned"]
        assert {m["payload"]["case_id"] for m in planned} >= case_ids
        for message in planned:
            if message["payload"]["case_id"] in case_ids:
                assert_lawful(message["payload"])
                assert message["_headers"]["event_type"] == "contact.planned"
                assert message["key"] == message["payload"]["case_id"]

        for case in posted:
            cid = case["id"]
            score = await wait_for(client, f"{stack.url('scoring')}/v1/scores/{cid}")
            latest = score["latest"]
            assert latest["model_id"] == "gmsc-scorecard"
            assert 300 < latest["score_points"] < 900
            assert latest["reasons"], "a scorecard score explains itself"
            assert latest["treatment"]
            attempts = await wait_for(
                client,
                f"{stack.url('contact')}/v1/cases/{cid}/attempts",
                ok=lambda b: len(b["attempts"]) == 1,
            )
            attempt = attempts["attempts"][0]
            assert_lawful(attempt)
            # Contact carries out scoring's recommended treatment.
            expected_channel = {
                "sms_reminder": "sms",
                "call": "call",
                "field_visit": "visit",
                "lawyers_letter": "letter",
                "litigation": "letter",
                "asset_disposal": "letter",
                "restructuring_offer": "call",
                "settlement_offer": "call",
            }[latest["treatment"]]
            assert attempt["channel"] == expected_channel, latest["treatment"]
            audit = await wait_for(
                client,
                f"{stack.url('compliance')}/v1/audit/entries?case_id={cid}",
                ok=lambda b: len(b["entries"]) >= 3,
            )
            # The log keeps arrival order; across topics that may differ from causal order.
            by_time = sorted(audit["entries"], key=lambda e: e["occurred_at"])
            types = [e["event_type"] for e in by_time]
            assert types == ["case.opened", "case.scored", "contact.planned"]
            # Personal data reaches the evidence log only as keyed hashes.
            assert case["account_id"] not in json.dumps(audit["entries"])
            # One correlation id from the CRM's request to the dialer's event.
            assert len({e["envelope"]["correlation_id"] for e in audit["entries"]}) == 1

        verify = (await client.get(f"{stack.url('compliance')}/v1/audit/verify")).json()
        assert verify["ok"] is True, verify
        assert verify["entries_checked"] >= 3 * len(posted)


async def test_bad_input_is_refused_and_writes_nothing(stack: LocalStack) -> None:
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        body = new_case(1, "Asia/Shanghai")
        bad = {**body, "debtor": {"name": "x", "time_zone": "Nowhere/Land"}}
        response = await client.post(f"{stack.url('cases')}/v1/cases", json=bad)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        negative = await client.post(
            f"{stack.url('cases')}/v1/cases", json={**body, "principal": "-1"}
        )
        assert negative.status_code == 422
        huge = await client.post(
            f"{stack.url('cases')}/v1/cases",
            content=b"{" + b" " * 200_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413
        # The same account can still be opened: nothing of the refused requests was written.
        ok = await client.post(f"{stack.url('cases')}/v1/cases", json=body)
        assert ok.status_code == 201


async def post_until(
    client: httpx.AsyncClient, url: str, bodies: list[dict[str, Any]], accepted: list[str]
) -> None:
    for body in bodies:
        response = await client.post(url, json=body)
        assert response.status_code == 201, response.text
        accepted.append(response.json()["id"])
        await asyncio.sleep(0.01)


async def wait_planned_exactly_once(
    client: httpx.AsyncClient, stack: LocalStack, case_ids: list[str], timeout_s: float = 120
) -> None:
    """Every case gets exactly one planned attempt in contact and one distinct
    `contact.planned` event on the topic (replays may repeat an event, never a plan)."""
    deadline = time.monotonic() + timeout_s
    missing = set(case_ids)
    while missing and time.monotonic() < deadline:
        for cid in sorted(missing):
            r = await client.get(f"{stack.url('contact')}/v1/cases/{cid}/attempts")
            if r.status_code == 200 and r.json()["attempts"]:
                assert len(r.json()["attempts"]) == 1, r.json()
                missing.discard(cid)
        await asyncio.sleep(0.5)
    assert not missing, f"{len(missing)} accepted case(s) never got a planned contact"
    dialer = await read_topic(
        stack.broker.bootstrap_servers,
        "contact.events",
        until=100_000,
        timeout_s=8,
        group_id=f"dialer-{uuid.uuid4().hex[:6]}",
    )
    per_case: dict[str, set[str]] = defaultdict(set)
    for m in dialer:
        if m["type"] == "contact.planned":
            per_case[m["payload"]["case_id"]].add(m["event_id"])
    lost = [c for c in case_ids if c not in per_case]
    doubled = [c for c in case_ids if len(per_case.get(c, ())) > 1]
    assert not lost, f"{len(lost)} case(s) missing on contact.events"
    assert not doubled, f"{len(doubled)} case(s) planned twice"


async def test_sigterm_drains_requests_and_commits_offsets_before_exit(stack: LocalStack) -> None:
    """SIGTERM cases while 40 case intakes are in flight: each request either got its answer or
    was never applied (its retry creates the case rather than replaying it), and none is a 5xx.
    Then SIGTERM contact once it is idle: its committed offsets equal the end of every
    partition it reads, so a restart re-reads nothing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    url = f"{stack.url('cases')}/v1/cases"
    bodies = [new_case(500 + i, ZONES[i % len(ZONES)]) for i in range(40)]
    keys = [f"drain-{uuid.uuid4()}" for _ in bodies]
    first: dict[int, int | str] = {}
    answered = asyncio.Event()

    async def intake(client: httpx.AsyncClient, index: int) -> None:
        try:
            response = await client.post(
                url, json=bodies[index], headers={"Idempotency-Key": keys[index]}
            )
            first[index] = response.status_code
        except httpx.TransportError as exc:
            first[index] = type(exc).__name__
        if sum(1 for o in first.values() if o == 201) >= 5:
            answered.set()

    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(headers=auth_headers(), timeout=30, limits=limits) as client:
        flying = [asyncio.create_task(intake(client, i)) for i in range(len(bodies))]
        await asyncio.wait_for(answered.wait(), timeout=60)
        await asyncio.to_thread(stack.stop_service, "cases")
        await asyncio.gather(*flying)
        assert not [o for o in first.values() if isinstance(o, int) and o != 201], first
        stack.start_service("cases")
        await asyncio.to_thread(stack.wait_ready, names=("cases",))
        accepted: list[str] = []
        for index, body in enumerate(bodies):
            again = await client.post(url, json=body, headers={"Idempotency-Key": keys[index]})
            assert again.status_code == 201, again.text
            replayed = again.headers.get("Idempotent-Replayed") == "true"
            # Answered before the exit <=> committed before the exit.
            assert replayed == (first[index] == 201), (index, first[index])
            accepted.append(again.json()["id"])
        await wait_planned_exactly_once(client, stack, accepted, timeout_s=120)
    drained = sum(1 for o in first.values() if o == 201)
    print(f"SIGTERM drain: {drained} answered, {len(bodies) - drained} refused, 0 lost")
    await asyncio.sleep(2)
    await asyncio.to_thread(stack.stop_service, "contact")
    reader = AIOKafkaConsumer(
        bootstrap_servers=stack.broker.bootstrap_servers,
        group_id="contact",
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        await reader.topics()
        behind = {}
        for topic in ("cases.events", "scoring.events"):
            partitions = [
                TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
            assert partitions, topic
            ends = await reader.end_offsets(partitions)
            for tp in partitions:
                committed = await reader.committed(tp) or 0
                # The embedded broker's end offset can trail the last offset it handed out
                # (it reports a stale high-water mark), so "at or past the end" is the test.
                if committed < ends[tp]:
                    behind[f"{tp.topic}/{tp.partition}"] = (committed, ends[tp])
        assert not behind, f"offsets not committed before exit: {behind}"
    finally:
        await reader.stop()
        stack.start_service("contact")
        await asyncio.to_thread(stack.wait_ready, names=("contact",))


async def test_killing_the_broker_loses_nothing_and_doubles_nothing(stack: LocalStack) -> None:
    """SIGKILL the broker while cases are posted; after it returns (empty: memory storage),
    every accepted case reaches contact.planned exactly once."""
    url = f"{stack.url('cases')}/v1/cases"
    bodies = [new_case(i, ZONES[i % len(ZONES)]) for i in range(120)]
    accepted: list[str] = []
    async with httpx.AsyncClient(headers=auth_headers(), timeout=15) as client:
        await post_until(client, url, bodies[:40], accepted)
        stack.broker.stop(kill=True)
        await post_until(client, url, bodies[40:80], accepted)  # accepted while the broker is down
        await stack.start_broker_async()
        await post_until(client, url, bodies[80:], accepted)
        assert len(accepted) == len(set(accepted)) == 120

        await wait_planned_exactly_once(client, stack, accepted)

        for cid in accepted[::10]:
            audit = await wait_for(
                client,
                f"{stack.url('compliance')}/v1/audit/entries?case_id={cid}",
                ok=lambda b: len(b["entries"]) >= 3,
            )
            # Once each (no double entry after the replays); across topics the arrival order
            # after a restart may differ, the events' own times may not.
            by_time = sorted(audit["entries"], key=lambda e: e["occurred_at"])
            assert [e["event_type"] for e in by_time] == [
                "case.opened",
                "case.scored",
                "contact.planned",
            ]
        verify = (await client.get(f"{stack.url('compliance')}/v1/audit/verify")).json()
        assert verify["ok"] is True, verify


async def test_poison_message_goes_to_the_dlq_and_the_partition_keeps_flowing(
    stack: LocalStack,
) -> None:
    from aiokafka import AIOKafkaProducer

    key = str(uuid.uuid4()).encode()
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait("cases.events", b"\x00not json at all", key=key)
    finally:
        await producer.stop()
    dead = await read_topic_raw(stack.broker.bootstrap_servers, "cases.events.dlq", until=3)
    consumers = {
        headers["dlq_consumer"] for headers, value in dead if value == b"\x00not json at all"
    }
    # Every consumer of cases.events dead-letters it once, with the reason.
    assert consumers == {"scoring", "contact", "compliance"}, consumers
    assert all("undecodable" in h["dlq_error"] for h, _ in dead)
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        response = await client.post(f"{stack.url('cases')}/v1/cases", json=new_case(3, "UTC"))
        cid = response.json()["id"]
        await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{cid}/attempts",
            ok=lambda b: len(b["attempts"]) == 1,
        )


async def read_topic_raw(
    bootstrap: str, topic: str, *, until: int, timeout_s: float = 30.0
) -> list[tuple[dict[str, str], bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    await consumer.start()
    seen: list[tuple[dict[str, str], bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < until and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(
                    ({k: v.decode() for k, v in r.headers}, r.value or b"") for r in records
                )
    finally:
        await consumer.stop()
    return seen


async def test_killing_a_consumer_service_mid_stream_loses_and_doubles_nothing(
    stack: LocalStack,
) -> None:
    """SIGKILL contact (a consumer and producer) while cases flow; after a restart every case
    has exactly one planned contact: offsets were committed only after the database."""
    url = f"{stack.url('cases')}/v1/cases"
    bodies = [new_case(i, ZONES[i % len(ZONES)]) for i in range(90)]
    accepted: list[str] = []
    async with httpx.AsyncClient(headers=auth_headers(), timeout=15) as client:
        await post_until(client, url, bodies[:30], accepted)
        stack.stop_service("contact", kill=True)
        await post_until(client, url, bodies[30:60], accepted)
        stack.start_service("contact")
        await asyncio.to_thread(stack.wait_ready, names=("contact",))
        await post_until(client, url, bodies[60:], accepted)
        await wait_planned_exactly_once(client, stack, accepted, timeout_s=90)


async def test_scores_reach_the_case_and_closing_it_withdraws_contact(stack: LocalStack) -> None:
    """The loop back to the system of record: scoring's tier and priority land on the case in
    cases; a hold and then a closure in cases withdraw contact's planned attempt."""
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        created = await client.post(
            f"{stack.url('cases')}/v1/cases", json=new_case(11, "Asia/Shanghai")
        )
        cid = created.json()["id"]
        scored = await wait_for(
            client, f"{stack.url('cases')}/v1/cases/{cid}", ok=lambda b: b["risk_tier"] is not None
        )
        score = (await client.get(f"{stack.url('scoring')}/v1/scores/{cid}")).json()
        assert scored["priority"] == score["latest"]["priority"]
        assert scored["risk_tier"] == score["latest"]["risk_tier"]
        timeline = (await client.get(f"{stack.url('cases')}/v1/cases/{cid}/timeline")).json()
        assert [e["kind"] for e in timeline["entries"]][:2] == ["opened", "scored"]

        await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{cid}/attempts",
            ok=lambda b: [a["status"] for a in b["attempts"]] == ["planned"],
        )
        closed = await client.post(
            f"{stack.url('cases')}/v1/cases/{cid}/close",
            json={"closure": "sold", "reason": "portfolio sale", "closed_by": "manager:zhao"},
        )
        assert closed.status_code == 200, closed.text
        await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{cid}/attempts",
            ok=lambda b: [a["status"] for a in b["attempts"]] == ["cancelled"],
        )
        await wait_for(
            client,
            f"{stack.url('compliance')}/v1/audit/entries?case_id={cid}",
            ok=lambda b: "case.closed" in {e["event_type"] for e in b["entries"]},
        )


async def test_an_opt_out_in_cases_withdraws_the_planned_attempt_in_contact(
    stack: LocalStack,
) -> None:
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        created = (
            await client.post(f"{stack.url('cases')}/v1/cases", json=new_case(12, "Europe/London"))
        ).json()
        attempts = await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{created['id']}/attempts",
            ok=lambda b: [a["status"] for a in b["attempts"]] == ["planned"],
        )
        channel = attempts["attempts"][0]["channel"]
        changed = await client.put(
            f"{stack.url('cases')}/v1/debtors/{created['debtor']['id']}/preferences",
            json={"opted_out_channels": [channel], "changed_by": "crm", "reason": "asked"},
        )
        assert changed.status_code == 200, changed.text
        # The attempt on that channel is withdrawn; the case is planned again on another.
        replanned = await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{created['id']}/attempts",
            ok=lambda b: [a["status"] for a in b["attempts"]] == ["cancelled", "planned"],
        )
        assert replanned["attempts"][1]["channel"] != channel
        decision = await client.post(
            f"{stack.url('contact')}/v1/contact/decisions",
            json={
                "debtor_id": created["debtor"]["id"],
                "case_id": created["id"],
                "channel": channel,
            },
        )
        assert any(o["rule_id"] == "OPT-OUT" for o in decision.json()["objections"])


async def test_compliance_rechecks_contact_and_a_complaint_stops_it(stack: LocalStack) -> None:
    """A call reported at 23:00 local is found by compliance's own re-check; a complaint taken
    in compliance holds the case in cases, which withdraws the attempt in contact."""
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        created = (
            await client.post(f"{stack.url('cases')}/v1/cases", json=new_case(21, "Asia/Shanghai"))
        ).json()
        case_id = created["id"]
        attempts = await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{case_id}/attempts",
            ok=lambda b: [a["status"] for a in b["attempts"]] == ["planned"],
        )
        attempt = attempts["attempts"][0]
        yesterday = date.today() - timedelta(days=1)
        late = datetime.combine(yesterday, clock(23, 0), tzinfo=ZoneInfo("Asia/Shanghai"))
        reported = await client.post(
            f"{stack.url('contact')}/v1/contact/outcomes",
            json={
                "outcome_id": str(uuid.uuid4()),
                "case_id": case_id,
                "channel": "call",
                "result": "no_answer",
                "dialer": "night-dialer",
                "occurred_at": late.isoformat(),
            },
        )
        assert reported.status_code == 201, reported.text
        found = await wait_for(
            client,
            f"{stack.url('compliance')}/v1/violations?case_id={case_id}",
            ok=lambda b: any(v["rule_id"] == "CN-HOURS" for v in b["violations"]),
        )
        # Only the night call: contact's own planned attempt passes compliance's re-check.
        assert [(v["rule_id"], v["subject"].split(":")[0]) for v in found["violations"]] == [
            ("CN-HOURS", "outcome")
        ]

        complaint = await client.post(
            f"{stack.url('compliance')}/v1/complaints",
            json={
                "debtor_id": created["debtor"]["id"],
                "case_id": case_id,
                "channel": "phone",
                "category": "harassment",
                "text": "They called me at eleven at night.",
                "received_by": "agent-e2e",
            },
        )
        assert complaint.status_code == 201, complaint.text
        holds_url = f"{stack.url('cases')}/v1/cases/{case_id}/holds"
        await wait_for(client, holds_url, ok=lambda b: any(h["kind"] == "complaint" for h in b))
        holds: list[dict[str, Any]] = (await client.get(holds_url)).json()
        assert [h["placed_by"] for h in holds if h["kind"] == "complaint"] == ["compliance"]
        await wait_for(
            client,
            f"{stack.url('contact')}/v1/attempts/{attempt['id']}",
            ok=lambda b: b["status"] == "cancelled",
        )


async def test_no_log_line_of_the_run_holds_a_clear_phone_id_or_email(stack: LocalStack) -> None:
    """Runs after the others in this module: every service's log of the whole run, plus this
    case's own traffic (a good request and a refused one that echoes the values back)."""
    national_id, phone, email = "11010119900307123X", "+8613812345678", "li.wei@example.com"
    body = new_case(31, "Asia/Shanghai")
    body["debtor"] |= {
        "national_id": national_id,
        "phone": phone,
        "contact_points": [{"kind": "email", "value": email, "consent": True}],
    }
    async with httpx.AsyncClient(headers=auth_headers(), timeout=10) as client:
        created = await client.post(f"{stack.url('cases')}/v1/cases", json=body)
        assert created.status_code == 201, created.text
        refused = await client.post(
            f"{stack.url('cases')}/v1/cases", json={**body, "currency": "XYZ"}
        )
        assert refused.status_code == 422
        await wait_for(
            client,
            f"{stack.url('contact')}/v1/cases/{created.json()['id']}/attempts",
            ok=lambda b: len(b["attempts"]) == 1,
        )
    logs = sorted(stack.workdir.rglob("*.log"))
    assert len(logs) >= 4, logs  # the four services (and the broker)
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        for value in (national_id, phone, phone[3:], email):
            assert value not in text, f"{value} in clear in {path.name}"


async def test_one_tenants_case_is_invisible_to_another_in_every_service(
    stack: LocalStack,
) -> None:
    """acme's CRM opens a case; it is scored, planned and logged under acme, each event names
    acme and the CRM that caused it, and globex's credentials find it nowhere."""
    acme, globex = auth_headers(tenant="acme"), auth_headers(tenant="globex")
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(
            f"{stack.url('cases')}/v1/cases",
            json=new_case(900, "Asia/Shanghai"),
            headers=auth_headers(kind="crm", tenant="acme"),
        )
        assert created.status_code == 201, created.text
        case_id = created.json()["id"]
        reads = {
            "cases": f"{stack.url('cases')}/v1/cases/{case_id}",
            "scoring": f"{stack.url('scoring')}/v1/scores/{case_id}",
            "contact": f"{stack.url('contact')}/v1/cases/{case_id}/attempts",
        }
        client.headers.update(acme)
        await wait_for(client, reads["scoring"])
        await wait_for(client, reads["contact"], ok=lambda b: len(b["attempts"]) == 1)
        entries_url = f"{stack.url('compliance')}/v1/audit/entries?case_id={case_id}"
        logged = await wait_for(client, entries_url, ok=lambda b: len(b["entries"]) >= 3)
        assert {e["event_type"] for e in logged["entries"]} >= {
            "case.opened",
            "case.scored",
            "contact.planned",
        }
        for service, url in reads.items():
            foreign = await client.get(url, headers=globex)
            assert foreign.status_code == 404, (service, foreign.text)
        foreign_log = await client.get(entries_url, headers=globex)
        assert foreign_log.status_code == 200
        assert foreign_log.json()["entries"] == []
    events = await read_topic(
        stack.broker.bootstrap_servers,
        "cases.events",
        until=100_000,
        timeout_s=5,
        group_id=f"tenancy-{uuid.uuid4().hex[:6]}",
        skip_undecodable=True,
    )
    opened = [
        e for e in events if e["type"] == "case.opened" and e["payload"]["case_id"] == case_id
    ]
    assert [(e["tenant"], e["actor"]) for e in opened] == [("acme", "crm:test-crm")]
