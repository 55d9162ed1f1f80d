"""Contact planning against a real database: either arrival order plans exactly one lawful
attempt, and the API shows it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.contact import service
from services.contact.app import create_app
from services.contact.settings import ContactSettings
from shared.contracts import CaseOpened, CaseScored, RiskTier, build_envelope
from shared.messaging import outbox
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.helpers import count_rows

# 23:30 in Shanghai: the first lawful slot is 08:00 the next morning.
LATE_EVENING = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("contact")


@pytest.fixture
async def app(url: str) -> AsyncIterator[FastAPI]:
    application = create_app(ContactSettings(database_url=url, enable_bus=False))
    async with application.router.lifespan_context(application):
        yield application


def events(dpd: int) -> tuple[CaseOpened, CaseScored]:
    case_id = uuid.uuid4()
    opened = CaseOpened(
        case_id=case_id,
        account_id="A",
        debtor_id=uuid.uuid4(),
        debtor_time_zone="Asia/Shanghai",
        product="card",
        currency="CNY",
        principal="500",
        interest="0",
        fees="0",
        amount_outstanding="500",
        due_date=date(2026, 2, 1),
        days_past_due=dpd,
        industry_risk=5,
        opened_at=LATE_EVENING,
    )
    scored = CaseScored(
        case_id=case_id,
        score_id=uuid.uuid4(),
        model_id="priority-rule",
        model_version="1",
        priority=3.5,
        risk_tier=RiskTier.LOW,
        days_past_due=dpd,
        amount_outstanding="500",
        currency="CNY",
        scored_at=LATE_EVENING,
    )
    return opened, scored


@pytest.mark.parametrize("scored_first", [False, True], ids=["opened-first", "scored-first"])
async def test_either_order_plans_one_lawful_attempt(app: FastAPI, scored_first: bool) -> None:
    opened, scored = events(dpd=10)
    env_opened = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    env_scored = build_envelope(
        scored, key=str(opened.case_id), producer="scoring", correlation_id="c", tenant="default"
    )
    sessions = app.state.runtime.sessions

    async def deliver_opened() -> object:
        async with sessions() as s, s.begin():
            return await service.record_case_opened(
                s, event=opened, envelope=env_opened, now=LATE_EVENING
            )

    async def deliver_scored() -> object:
        async with sessions() as s, s.begin():
            return await service.record_case_scored(
                s, event=scored, envelope=env_scored, now=LATE_EVENING
            )

    first, second = (
        (deliver_scored, deliver_opened) if scored_first else (deliver_opened, deliver_scored)
    )
    assert await first() is None  # half the picture: nothing planned yet
    assert await second() is not None
    assert await deliver_scored() is None  # a later score does not plan a second first attempt

    engine = app.state.runtime.engine
    assert await count_rows(engine, "contact_attempts") == 1
    async with sessions() as s:
        row = (await s.execute(sa.select(outbox.c.topic, outbox.c.value))).one()
    assert row.topic == "contact.events"
    planned = json.loads(row.value)
    assert planned["type"] == "contact.planned"
    assert planned["causation_id"] == str((env_opened if scored_first else env_scored).event_id)
    slot = datetime.fromisoformat(planned["payload"]["planned_at"])
    local = slot.astimezone(ZoneInfo("Asia/Shanghai"))
    assert (local.date(), local.time()) == (date(2026, 3, 5), time(8, 0))
    assert planned["payload"]["channel"] == "call"
    assert planned["payload"]["window_rule_id"] == "CN-HOURS"

    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        body = (await c.get(f"/v1/cases/{opened.case_id}/attempts")).json()
        assert [a["local_planned_at"] for a in body["attempts"]] == ["2026-03-05T08:00:00+08:00"]
        one = await c.get(f"/v1/attempts/{body['attempts'][0]['id']}")
        assert one.status_code == 200
        assert (await c.get(f"/v1/cases/{uuid.uuid4()}/attempts")).status_code == 404


async def test_decisions_api_names_rules_and_next_moment(app: FastAPI) -> None:
    opened, _scored = events(dpd=3)
    env_opened = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_opened, now=LATE_EVENING)
    base = {"debtor_id": str(opened.debtor_id), "case_id": str(opened.case_id), "channel": "call"}
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        night = await c.post("/v1/contact/decisions", json={**base, "at": "2026-03-04T15:30:00Z"})
        assert night.status_code == 200, night.text
        body = night.json()
        assert body["allowed"] is False
        assert [o["rule_id"] for o in body["objections"]] == ["CN-HOURS"]
        assert body["next_allowed_at"] == "2026-03-05T00:00:00Z"  # 08:00 in Shanghai
        assert body["packs"] == ["cn@2026.11"]
        day = await c.post("/v1/contact/decisions", json={**base, "at": "2026-03-05T02:00:00Z"})
        assert day.json()["allowed"] is True
        us = await c.post(
            "/v1/contact/decisions",
            json={
                **base,
                "at": "2026-03-05T12:30:00Z",
                "packs": ["us-federal"],
                "zones": ["America/New_York", "America/Los_Angeles"],
            },
        )
        assert [o["rule_id"] for o in us.json()["objections"]] == ["US-HOURS"]
        assert us.json()["next_allowed_at"] == "2026-03-05T16:00:00Z"  # 08:00 in Los Angeles
        for bad, field in (
            ({**base, "at": "2026-03-05T02:00:00"}, "body.at"),
            ({**base, "channel": "pigeon"}, "body.channel"),
            ({**base, "zones": ["Mars/Base"]}, "body.zones.0"),
        ):
            response = await c.post("/v1/contact/decisions", json=bad)
            assert response.status_code == 422, bad
            assert field in [p["name"] for p in response.json()["invalid-params"]]
        pack = await c.post("/v1/contact/decisions", json={**base, "packs": ["mars"]})
        assert pack.status_code == 422
        assert "mars" in pack.json()["detail"]
        unknown = await c.post("/v1/contact/decisions", json={**base, "case_id": str(uuid.uuid4())})
        assert unknown.status_code == 404


async def test_outcomes_are_kept_once_flagged_and_counted(app: FastAPI) -> None:
    opened, scored = events(dpd=10)
    cid = opened.case_id
    env_o = build_envelope(
        opened, key=str(cid), producer="cases", correlation_id="c", tenant="default"
    )
    env_s = build_envelope(
        scored, key=str(cid), producer="scoring", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
        attempt = await service.record_case_scored(
            s, event=scored, envelope=env_s, now=LATE_EVENING
        )
    assert attempt is not None

    def outcome(result: str, when: str, **kw: object) -> dict[str, object]:
        return {
            "outcome_id": str(uuid.uuid4()),
            "case_id": str(cid),
            "channel": "call",
            "result": result,
            "occurred_at": when,
            "dialer": "acme-dialer",
            **kw,
        }

    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        # 09:00, 10:00, 11:00 in Shanghai on 5 March: three connected calls, two agencies.
        first = outcome("right_party_contact", "2026-03-05T01:00:00Z", attempt_id=str(attempt.id))
        r = await c.post("/v1/contact/outcomes", json=first)
        assert (r.status_code, r.json()["flags"], r.json()["duplicate"]) == (201, [], False)
        again = await c.post("/v1/contact/outcomes", json=first)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        for hour, agency in ((2, "acme"), (3, "bravo")):
            r = await c.post(
                "/v1/contact/outcomes",
                json=outcome(
                    "promise_to_pay",
                    f"2026-03-05T0{hour}:00:00Z",
                    agency=agency,
                    promised_amount="300",
                    promised_date="2026-03-20",
                ),
            )
            assert r.json()["flags"] == ["never_planned"]
        night = await c.post(
            "/v1/contact/outcomes", json=outcome("no_answer", "2026-03-05T15:00:00Z")
        )
        assert night.json()["flags"] == ["never_planned", "forbidden_time:CN-HOURS"]
        decision = await c.post(
            "/v1/contact/decisions",
            json={
                "debtor_id": str(opened.debtor_id),
                "case_id": str(cid),
                "channel": "call",
                "at": "2026-03-05T06:00:00Z",
            },
        )
        assert [o["rule_id"] for o in decision.json()["objections"]] == ["CN-CALLS-DAY"]
        assert decision.json()["next_allowed_at"] == "2026-03-06T00:00:00Z"
        bad = await c.post("/v1/contact/outcomes", json={**first, "result": "vanished"})
        assert bad.status_code == 422
    async with app.state.runtime.sessions() as s:
        rows = (await s.execute(sa.select(outbox.c.event_type))).scalars().all()
        status = (await s.execute(sa.text("SELECT status, result FROM contact_attempts"))).one()
    assert rows.count("contact.outcome_recorded") == 4
    assert tuple(status) == ("completed", "right_party_contact")


async def test_three_agitated_automated_outcomes_go_to_a_human(app: FastAPI) -> None:
    opened, _scored = events(dpd=3)
    env_o = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        for minute, result in enumerate(
            ["agitated", "agitated", "no_answer", "agitated", "agitated"]
        ):
            await c.post(
                "/v1/contact/outcomes",
                json={
                    "outcome_id": str(uuid.uuid4()),
                    "case_id": str(opened.case_id),
                    "channel": "call",
                    "result": result,
                    "automated": True,
                    "dialer": "ivr",
                    "occurred_at": f"2026-03-05T02:0{minute}:00Z",
                },
            )
        async with app.state.runtime.sessions() as s:
            types = (await s.execute(sa.select(outbox.c.event_type))).scalars().all()
        assert "contact.escalated" not in types  # a no-answer broke the run
        await c.post(
            "/v1/contact/outcomes",
            json={
                "outcome_id": str(uuid.uuid4()),
                "case_id": str(opened.case_id),
                "channel": "call",
                "result": "agitated",
                "automated": True,
                "dialer": "ivr",
                "occurred_at": "2026-03-05T02:09:00Z",
            },
        )
    async with app.state.runtime.sessions() as s:
        types = (await s.execute(sa.select(outbox.c.event_type))).scalars().all()
        human = (await s.execute(sa.text("SELECT human_only FROM contact_cases"))).scalar_one()
    assert types.count("contact.escalated") == 1
    assert bool(human) is True


async def test_worklist_leases_once_and_rechecks_at_release(app: FastAPI) -> None:
    planned = []
    for dpd in (10, 12, 20):
        opened, scored = events(dpd=dpd)
        env_o = build_envelope(
            opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
        )
        env_s = build_envelope(
            scored,
            key=str(opened.case_id),
            producer="scoring",
            correlation_id="c",
            tenant="default",
        )
        async with app.state.runtime.sessions() as s, s.begin():
            await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
            attempt = await service.record_case_scored(
                s, event=scored, envelope=env_s, now=LATE_EVENING
            )
            assert attempt is not None
            planned.append(attempt)
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        # 07:00 in Shanghai: the slots (08:00) are not due yet.
        app.state.clock = lambda: datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
        assert (
            await c.get("/v1/dialer/worklist", params={"channel": "call", "dialer": "a"})
        ).json() == []
        # 09:00: all due; two dialers share them without overlap.
        app.state.clock = lambda: datetime(2026, 3, 5, 1, 0, tzinfo=UTC)
        first = (
            await c.get(
                "/v1/dialer/worklist", params={"channel": "call", "dialer": "a", "limit": 2}
            )
        ).json()
        second = (
            await c.get(
                "/v1/dialer/worklist", params={"channel": "call", "dialer": "b", "limit": 5}
            )
        ).json()
        assert len(first) == 2
        assert len(second) == 1
        assert {a["id"] for a in first}.isdisjoint({a["id"] for a in second})
        assert [a["priority"] for a in first] == sorted(
            [a["priority"] for a in first], reverse=True
        )
        # A lease that runs out goes back on the list; a re-check at 22:30 moves it to 08:00.
        app.state.clock = lambda: datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
        late = (
            await c.get("/v1/dialer/worklist", params={"channel": "call", "dialer": "c"})
        ).json()
        assert late == []
    async with app.state.runtime.sessions() as s:
        blocked = (
            (
                await s.execute(
                    sa.select(outbox.c.value).where(outbox.c.event_type == "contact.blocked")
                )
            )
            .scalars()
            .all()
        )
        rows = (await s.execute(sa.text("SELECT status, planned_at FROM contact_attempts"))).all()
    assert len(blocked) == 3
    payload = json.loads(blocked[0])["payload"]
    assert payload["rule_ids"] == ["CN-HOURS"]
    assert payload["next_allowed_at"] == "2026-03-06T00:00:00Z"
    assert {r.status for r in rows} == {"planned"}


async def test_holds_cancel_live_attempts_block_decisions_and_release_replans(
    app: FastAPI,
) -> None:
    from services.contact.handlers import make_handlers
    from shared.bus import MessageProcessor
    from shared.contracts import HoldKind, HoldPlaced, HoldReleased
    from tests.integration.test_message_processor import record

    proc = MessageProcessor(
        consumer_name="contact", handlers=make_handlers(("cn",)), max_retries=0, retry_backoff_ms=0
    )
    opened, scored = events(dpd=10)
    other_opened, other_scored = events(dpd=4)
    other_opened = other_opened.model_copy(update={"debtor_id": opened.debtor_id})
    hold_id = uuid.uuid4()

    def env(payload: Any, key: uuid.UUID) -> bytes:
        return build_envelope(
            payload, key=str(key), producer="cases", correlation_id="c", tenant="default"
        ).to_bytes()

    stream = [
        env(opened, opened.case_id),
        env(scored, opened.case_id),
        env(other_opened, other_opened.case_id),
        env(other_scored, other_opened.case_id),
        env(
            HoldPlaced(
                hold_id=hold_id,
                case_id=opened.case_id,
                debtor_id=opened.debtor_id,
                kind=HoldKind.DISPUTE,
                reason="debtor disputes the fees",
                placed_by="agent-7",
                starts_at=LATE_EVENING,
            ),
            opened.case_id,
        ),
    ]
    async with app.state.runtime.sessions() as s, s.begin():
        assert [(await proc.process(s, record(v, i))).outcome for i, v in enumerate(stream)] == [
            "processed"
        ] * 5
    async with app.state.runtime.sessions() as s:
        rows = dict(
            (await s.execute(sa.text("SELECT case_id, status FROM contact_attempts"))).all()
        )
        cancelled = (
            (
                await s.execute(
                    sa.select(outbox.c.value).where(outbox.c.event_type == "contact.cancelled")
                )
            )
            .scalars()
            .all()
        )
    statuses = {str(uuid.UUID(str(k))): v for k, v in rows.items()}
    # A dispute stops this debt only; the debtor's other case keeps its attempt.
    assert statuses[str(opened.case_id)] == "cancelled"
    assert statuses[str(other_opened.case_id)] == "planned"
    assert [json.loads(v)["payload"]["rule_ids"] for v in cancelled] == [["HOLD-DISPUTE"]]
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        held = await c.post(
            "/v1/contact/decisions",
            json={
                "debtor_id": str(opened.debtor_id),
                "case_id": str(opened.case_id),
                "channel": "call",
                "at": "2026-03-05T02:00:00Z",
            },
        )
        assert [o["rule_id"] for o in held.json()["objections"]] == ["HOLD-DISPUTE"]
        assert held.json()["next_allowed_at"] is None
    release = env(
        HoldReleased(
            hold_id=hold_id, case_id=opened.case_id, released_by="agent-7", released_at=LATE_EVENING
        ),
        opened.case_id,
    )
    async with app.state.runtime.sessions() as s, s.begin():
        assert (await proc.process(s, record(release, 9))).outcome == "processed"
    from services.contact.models import ContactAttempt

    async with app.state.runtime.sessions() as s:
        replanned = (
            await s.execute(
                sa.select(ContactAttempt.attempt_no, ContactAttempt.status).where(
                    ContactAttempt.case_id == opened.case_id
                )
            )
        ).all()
    assert sorted(tuple(r) for r in replanned) == [(1, "cancelled"), (2, "planned")]


async def test_policy_is_versioned_never_looser_and_simulated(app: FastAPI) -> None:
    opened, _scored = events(dpd=10)
    env_o = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
    policy = {
        "packs": ["cn"],
        "window_start": "09:00",
        "window_end": "21:00",
        "quiet": [{"start": "12:00", "end": "13:30"}],
        "caps": {"CN-CALLS-DAY": 2},
        "changed_by": "officer-li",
        "reason": "lunch quiet hours",
    }
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        assert (await c.get("/v1/contact/policy")).json()["version"] == 0
        offset = await c.put("/v1/contact/policy", json={**policy, "window_start": "09:00+01:00"})
        assert offset.status_code == 422  # found by schemathesis: a 500 before
        assert offset.json()["invalid-params"][0]["name"] == "body.window_start"
        for looser, words in (
            ({**policy, "window_start": "07:00"}, "window_start"),
            ({**policy, "caps": {"CN-CALLS-DAY": 5}}, "above the law"),
            ({**policy, "caps": {"US-7IN7": 1}}, "not a cap"),
            ({**policy, "packs": ["us-ma"]}, "us-federal"),
        ):
            refused = await c.post("/v1/contact/simulate", json=looser)
            assert refused.status_code == 422, looser
            assert words in refused.json()["detail"]
        for hour in (1, 2, 4, 5):  # 09:00, 10:00, 12:00, 13:00 in Shanghai on 5 March
            await c.post(
                "/v1/contact/outcomes",
                json={
                    "outcome_id": str(uuid.uuid4()),
                    "case_id": str(opened.case_id),
                    "channel": "call",
                    "result": "right_party_contact",
                    "dialer": "d",
                    "occurred_at": f"2026-03-05T0{hour}:00:00Z",
                },
            )
        sim = (await c.post("/v1/contact/simulate", json=policy)).json()
        assert sim["attempts_replayed"] == 4
        assert sim["allowed"] == 2
        assert sim["by_rule"] == {"POLICY-QUIET": 2, "CN-CALLS-DAY": 2}  # 12:00 and 13:00
        stored = await c.put("/v1/contact/policy", json=policy)
        assert stored.status_code == 200, stored.text
        assert stored.json()["version"] == 1
        again = await c.put("/v1/contact/policy", json={**policy, "reason": "tighter"})
        assert again.json()["version"] == 2
        lunch = await c.post(
            "/v1/contact/decisions",
            json={
                "debtor_id": str(opened.debtor_id),
                "case_id": str(opened.case_id),
                "channel": "sms",
                "at": "2026-03-06T04:15:00Z",
            },
        )
        assert [o["rule_id"] for o in lunch.json()["objections"]] == ["POLICY-QUIET"]
        early = await c.post(
            "/v1/contact/decisions",
            json={
                "debtor_id": str(opened.debtor_id),
                "case_id": str(opened.case_id),
                "channel": "sms",
                "at": "2026-03-06T00:30:00Z",
            },
        )
        assert early.json()["next_allowed_at"] == "2026-03-06T01:00:00Z"  # 09:00 local
    async with app.state.runtime.sessions() as s:
        published = (
            (
                await s.execute(
                    sa.select(outbox.c.event_type).where(outbox.c.key == "contact-policy")
                )
            )
            .scalars()
            .all()
        )
    assert published == ["contact.policy_changed", "contact.policy_changed"]


async def prefer_answer_hours(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        stored = await c.put(
            "/v1/contact/policy",
            json={
                "packs": ["cn"],
                "prefer_answer_hours": True,
                "changed_by": "ops",
                "reason": "plan when people answer",
            },
        )
        assert stored.status_code == 200, stored.text


async def test_answer_hours_preference_moves_the_slot_within_the_law(app: FastAPI) -> None:
    await prefer_answer_hours(app)
    opened, scored = events(dpd=10)
    env_o = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    env_s = build_envelope(
        scored, key=str(opened.case_id), producer="scoring", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
        attempt = await service.record_case_scored(
            s, event=scored, envelope=env_s, now=LATE_EVENING
        )
    assert attempt is not None
    local = attempt.planned_at.astimezone(ZoneInfo("Asia/Shanghai"))
    # Not 08:00 (the earliest lawful moment) but 10:00, when calls are answered most.
    assert (local.date(), local.time()) == (date(2026, 3, 5), time(10, 0))


async def test_the_debtors_own_answers_move_the_slot(app: FastAPI) -> None:
    from datetime import timedelta

    from services.contact.models import ContactOutcomeRecord

    await prefer_answer_hours(app)
    opened, scored = events(dpd=10)
    shanghai = ZoneInfo("Asia/Shanghai")
    # Over the last weeks this debtor answered every call at 20:00 and none at 10:00.
    history = [
        ContactOutcomeRecord(
            outcome_id=uuid.uuid4(),
            attempt_id=None,
            case_id=uuid.uuid4(),  # another debt of the same person
            debtor_id=opened.debtor_id,
            channel="call",
            result="right_party_contact" if hour == 20 else "no_answer",
            occurred_at=datetime.combine(
                date(2026, 2, 10) + timedelta(days=day), time(hour), tzinfo=shanghai
            ).astimezone(UTC),
            automated=False,
            agency=None,
            dialer="d",
            flags=[],
            details={},
            received_at=LATE_EVENING,
        )
        for day in range(12)
        for hour in (10, 20)
    ]
    env_o = build_envelope(
        opened, key=str(opened.case_id), producer="cases", correlation_id="c", tenant="default"
    )
    env_s = build_envelope(
        scored, key=str(opened.case_id), producer="scoring", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        s.add_all(history)
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
        attempt = await service.record_case_scored(
            s, event=scored, envelope=env_s, now=LATE_EVENING
        )
    assert attempt is not None
    local = attempt.planned_at.astimezone(shanghai)
    # Without this history the slot is 10:00 (the test above); the debtor's own answers win.
    assert (local.date(), local.time()) == (date(2026, 3, 5), time(20, 0))


async def test_no_answer_plans_the_next_lawful_try_and_a_promise_does_not(app: FastAPI) -> None:
    opened, scored = events(dpd=10)
    cid = opened.case_id
    env_o = build_envelope(
        opened, key=str(cid), producer="cases", correlation_id="c", tenant="default"
    )
    env_s = build_envelope(
        scored, key=str(cid), producer="scoring", correlation_id="c", tenant="default"
    )
    async with app.state.runtime.sessions() as s, s.begin():
        await service.record_case_opened(s, event=opened, envelope=env_o, now=LATE_EVENING)
        first = await service.record_case_scored(s, event=scored, envelope=env_s, now=LATE_EVENING)
    assert first is not None
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        # No answer at 21:00 Shanghai: two hours later is 23:00, so the retry is 08:00 next day.
        app.state.clock = lambda: datetime(2026, 3, 5, 13, 0, 30, tzinfo=UTC)
        await c.post(
            "/v1/contact/outcomes",
            json={
                "outcome_id": str(uuid.uuid4()),
                "attempt_id": str(first.id),
                "case_id": str(cid),
                "channel": "call",
                "result": "no_answer",
                "dialer": "d",
                "occurred_at": "2026-03-05T13:00:00Z",
            },
        )
        attempts = (await c.get(f"/v1/cases/{cid}/attempts")).json()["attempts"]
        assert [(a["attempt_no"], a["status"]) for a in attempts] == [
            (1, "completed"),
            (2, "planned"),
        ]
        assert attempts[1]["local_planned_at"] == "2026-03-06T08:00:00+08:00"
        await c.post(
            "/v1/contact/outcomes",
            json={
                "outcome_id": str(uuid.uuid4()),
                "attempt_id": attempts[1]["id"],
                "case_id": str(cid),
                "channel": "call",
                "result": "promise_to_pay",
                "promised_amount": "500",
                "promised_date": "2026-03-10",
                "dialer": "d",
                "occurred_at": "2026-03-06T00:30:00Z",
            },
        )
        after = (await c.get(f"/v1/cases/{cid}/attempts")).json()["attempts"]
        assert [a["status"] for a in after] == ["completed", "completed"]  # waits for the promise


async def test_opt_outs_and_consents_from_cases_govern_contact(app: FastAPI) -> None:
    from services.contact.handlers import make_handlers
    from shared.bus import MessageProcessor
    from shared.contracts import DebtorPreferencesChanged
    from tests.integration.test_message_processor import record

    proc = MessageProcessor(
        consumer_name="contact", handlers=make_handlers(("cn",)), max_retries=0, retry_backoff_ms=0
    )
    opened, scored = events(dpd=10)

    def env(payload: Any, key: uuid.UUID) -> bytes:
        return build_envelope(
            payload, key=str(key), producer="cases", correlation_id="c", tenant="default"
        ).to_bytes()

    def preferences(channels: list[str], consents: list[str], at: datetime) -> bytes:
        return env(
            DebtorPreferencesChanged(
                debtor_id=opened.debtor_id,
                opted_out_channels=channels,
                consents=consents,
                changed_by="collector:li",
                reason="asked on a call",
                changed_at=at,
            ),
            opened.debtor_id,
        )

    async with app.state.runtime.sessions() as s, s.begin():
        for i, value in enumerate([env(opened, opened.case_id), env(scored, opened.case_id)]):
            assert (await proc.process(s, record(value, i))).outcome == "processed"
    async with app.state.runtime.sessions() as s:
        [(channel, status)] = (
            await s.execute(sa.text("SELECT channel, status FROM contact_attempts"))
        ).all()
    assert status == "planned"

    async def decide(c: httpx.AsyncClient, channel: str, agency: str | None = None) -> list[str]:
        body: dict[str, Any] = {
            "debtor_id": str(opened.debtor_id),
            "case_id": str(opened.case_id),
            "channel": channel,
            "at": "2026-03-05T02:00:00Z",  # 10:00 in Shanghai
        }
        if agency:
            body["agency"] = agency
        response = await c.post("/v1/contact/decisions", json=body)
        assert response.status_code == 200, response.text
        return [o["rule_id"] for o in response.json()["objections"]]

    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as c:
        assert await decide(c, channel) == []
        assert await decide(c, channel, agency="Far East Recovery") == ["CN-CONSENT-23"]
        later = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
        async with app.state.runtime.sessions() as s, s.begin():
            opt_out = preferences([channel, "workplace"], ["agency:Far East Recovery"], later)
            assert (await proc.process(s, record(opt_out, 5))).outcome == "processed"
            # An older change delivered late does not undo the newer one.
            stale = preferences([], [], LATE_EVENING)
            assert (await proc.process(s, record(stale, 6))).outcome == "processed"
        assert await decide(c, channel) == ["OPT-OUT"]
        other = "sms" if channel != "sms" else "call"
        assert "OPT-OUT" not in await decide(c, other)
        assert await decide(c, other, agency="Far East Recovery") == []
        at_work = await c.post(
            "/v1/contact/decisions",
            json={
                "debtor_id": str(opened.debtor_id),
                "case_id": str(opened.case_id),
                "channel": other,
                "at": "2026-03-05T15:00:00Z",  # 10:00 in New York
                "zones": ["America/New_York"],
                "packs": ["us-federal"],
                "workplace": True,
            },
        )
        assert [o["rule_id"] for o in at_work.json()["objections"]] == ["US-WORKPLACE"]
    async with app.state.runtime.sessions() as s:
        attempts = (
            await s.execute(
                sa.text("SELECT channel, status FROM contact_attempts ORDER BY attempt_no")
            )
        ).all()
        planned = (
            (
                await s.execute(
                    sa.select(outbox.c.value).where(outbox.c.event_type == "contact.planned")
                )
            )
            .scalars()
            .all()
        )
        cancelled = (
            (
                await s.execute(
                    sa.select(outbox.c.value).where(outbox.c.event_type == "contact.cancelled")
                )
            )
            .scalars()
            .all()
        )
    # The call was withdrawn and the same case re-planned on a channel still accepted.
    assert [tuple(row) for row in attempts] == [(channel, "cancelled"), (other, "planned")]
    assert [json.loads(v)["payload"]["rule_ids"] for v in cancelled] == [["OPT-OUT"]]
    fallback = json.loads(planned[-1])["payload"]
    assert (fallback["channel"], fallback["fallback_from"]) == (other, channel)
    assert fallback["template"] == "payment_reminder_sms"
