"""Teams, collectors, queues (with the `next` lock), agencies, allocation, search and the
events consumed from scoring and contact, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from services.cases import service
from shared.contracts import CaseScored, ContactOutcomeRecorded, OutcomeResult, RiskTier
from tests.integration.cases_support import (
    Clock,
    cases_app,
    cases_db,
    clock,
    count,
    events,
    http,
    open_case,
    problem,
    snapshot,
)

__all__ = ["cases_app", "cases_db", "clock", "http"]  # fixtures


async def score(app: FastAPI, clock: Clock, case_id: str, priority: float, **extra: Any) -> None:
    """Deliver a `case.scored` as the consumer would (same service call, same transaction)."""
    event = CaseScored(
        case_id=uuid.UUID(case_id),
        score_id=uuid.uuid4(),
        model_id="scorecard",
        model_version="1",
        priority=priority,
        risk_tier=extra.pop("risk_tier", RiskTier.MEDIUM),
        days_past_due=20,
        amount_outstanding=Decimal("100.00"),
        currency="CNY",
        scored_at=extra.pop("scored_at", clock.now),
        **extra,
    )
    async with app.state.runtime.sessions() as session, session.begin():
        await service.record_score(
            session,
            event=event,
            ctx=service.Context(now=clock.now, correlation_id="t", tenant="default"),
        )


async def team_with_collectors(
    http: httpx.AsyncClient, n: int, **collector: Any
) -> tuple[str, list[str]]:
    team = (await http.post("/v1/teams", json={"name": f"team-{uuid.uuid4().hex[:6]}"})).json()
    ids = []
    for i in range(n):
        created = await http.post(
            "/v1/collectors",
            json={"name": f"c{i}", "team_id": team["id"], "capacity": 100, **collector},
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return team["id"], ids


async def test_next_gives_the_highest_priority_case_and_locks_it(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    low = await open_case(http, clock)
    high = await open_case(http, clock)
    held = await open_case(http, clock)
    await score(cases_app, clock, low["id"], 10)
    await score(cases_app, clock, high["id"], 90)
    await score(cases_app, clock, held["id"], 99)
    await http.post(
        f"/v1/cases/{held['id']}/holds",
        json={"kind": "dispute", "reason": "says not theirs", "placed_by": "a"},
    )
    team, (alice, bob) = await team_with_collectors(http, 2)
    queue = (await http.post("/v1/queues", json={"name": "early", "team_id": team})).json()
    url = f"/v1/queues/{queue['id']}/next"

    first = await http.post(url, json={"collector_id": alice})
    assert first.status_code == 200, first.text
    assert first.json()["id"] == high["id"]  # the held case is skipped
    assert first.json()["assignment"]["locked_by"] == alice
    second = await http.post(url, json={"collector_id": bob})
    assert second.json()["id"] == low["id"]
    empty = await http.post(url, json={"collector_id": bob})
    assert empty.status_code == 204

    released = await http.post(f"/v1/cases/{high['id']}/release", json={"collector_id": alice})
    assert released.status_code == 200
    assert (await http.post(url, json={"collector_id": bob})).json()["id"] == high["id"]
    problem(await http.post(f"/v1/cases/{high['id']}/release", json={"collector_id": alice}), 409)

    clock.advance(minutes=31)  # locks lapse: a case left half-worked goes back to the queue
    again = await http.post(url, json={"collector_id": alice})
    assert again.json()["id"] == high["id"]


async def test_two_collectors_calling_next_at_once_never_get_the_same_case(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    for i in range(12):
        case = await open_case(http, clock)
        await score(cases_app, clock, case["id"], float(i))
    team, collectors = await team_with_collectors(http, 2)
    queue = (await http.post("/v1/queues", json={"name": "all", "team_id": team})).json()

    async def take(collector: str) -> list[str]:
        won: list[str] = []
        for _ in range(20):
            response = await http.post(
                f"/v1/queues/{queue['id']}/next", json={"collector_id": collector}
            )
            if response.status_code == 204:
                return won
            assert response.status_code == 200, response.text
            won.append(response.json()["id"])  # held under the caller's lock from now on
        raise AssertionError(f"{collector} was still being handed cases after 20 calls")

    first, second = await asyncio.gather(take(collectors[0]), take(collectors[1]))
    assert set(first).isdisjoint(second)
    assert len(first) + len(second) == 12
    assert len(set(first)) == len(first)
    assert len(set(second)) == len(second)


async def test_placement_and_recall(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    agency = (await http.post("/v1/agencies", json={"name": "Far East Recovery"})).json()
    placed = await http.post(
        f"/v1/cases/{case['id']}/placement", json={"agency_id": agency["id"], "placed_by": "m"}
    )
    assert placed.json()["assignment"]["agency_id"] == agency["id"]
    team, (alice,) = await team_with_collectors(http, 1)
    queue = (await http.post("/v1/queues", json={"name": "q", "team_id": team})).json()
    assert (
        await http.post(f"/v1/queues/{queue['id']}/next", json={"collector_id": alice})
    ).status_code == 204  # an agency's case is not worked in-house
    problem(
        await http.post(
            f"/v1/cases/{case['id']}/placement", json={"agency_id": agency["id"], "placed_by": "m"}
        ),
        409,
    )
    recalled = await http.post(
        f"/v1/cases/{case['id']}/recall", json={"recalled_by": "m", "reason": "no progress"}
    )
    assert recalled.json()["assignment"]["agency_id"] is None
    reasons = [e["payload"]["reason"] for e in await events(cases_app, "case.assigned")]
    assert reasons == ["placement", "recall: no progress"]
    by_agency = await http.get("/v1/cases", params={"agency_id": agency["id"]})
    assert by_agency.json()["items"] == []


async def test_allocation_by_language_and_load(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    team = (await http.post("/v1/teams", json={"name": "mixed"})).json()
    english = (
        await http.post(
            "/v1/collectors",
            json={"name": "Ann", "team_id": team["id"], "languages": ["en"], "capacity": 2},
        )
    ).json()
    chinese = (
        await http.post(
            "/v1/collectors",
            json={"name": "Li", "team_id": team["id"], "languages": ["zh"], "capacity": 5},
        )
    ).json()
    for i in range(3):
        await open_case(
            http, clock, debtor={"name": f"E{i}", "time_zone": "Europe/London", "language": "en"}
        )
    for i in range(2):
        await open_case(
            http, clock, debtor={"name": f"Z{i}", "time_zone": "Asia/Shanghai", "language": "zh"}
        )
    result = await http.post("/v1/allocation/run", json={"team_id": team["id"]})
    assert result.json() == {"assigned": 4, "left_unassigned": 1}  # Ann is full after two
    loads = {c["name"]: c["assigned"] for c in (await http.get("/v1/collectors")).json()}
    assert loads == {"Ann": 2, "Li": 2}
    mine = await http.get("/v1/cases", params={"collector_id": english["id"]})
    assert {c["debtor"]["language"] for c in mine.json()["items"]} == {"en"}
    assert len(await events(cases_app, "case.assigned")) == 4
    assert chinese["id"]


async def test_search_filters_and_cursor_pages(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    ids = []
    for i, (dpd, tag, principal) in enumerate(
        [(3, "online", "100.00"), (20, "branch", "5000.00"), (45, "online", "50000.00")] * 4
    ):
        case = await open_case(
            http,
            clock,
            due_date=(clock.today - timedelta(days=dpd)).isoformat(),
            tags=[tag],
            principal=principal,
            interest="0",
            fees="0",
        )
        await score(cases_app, clock, case["id"], float(i % 5))
        ids.append(case["id"])
    bucket = await http.get("/v1/cases", params={"bucket": "16-30"})
    assert {c["days_past_due"] for c in bucket.json()["items"]} == {20}
    two = await http.get("/v1/cases", params=[("bucket", "1-7"), ("bucket", "31-60")])
    assert len(two.json()["items"]) == 8
    tagged = await http.get("/v1/cases", params={"tag": "online", "min_balance": "1000"})
    assert [c["amount_outstanding"] for c in tagged.json()["items"]] == ["50000.00"] * 4

    seen: list[str] = []
    cursor = None
    priorities = []
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/cases", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        priorities += [c["priority"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert priorities == sorted(priorities, reverse=True)

    problem(await http.get("/v1/cases", params={"cursor": "not-a-cursor"}), 422)
    assert (
        "unknown bucket"
        in problem(await http.get("/v1/cases", params={"bucket": "9-99"}), 422)["detail"]
    )
    problem(await http.get("/v1/cases", params={"min_balance": "-1"}), 422)
    problem(await http.get("/v1/cases", params={"stage": "bored"}), 422)


async def test_scores_keep_the_latest_and_skip_challengers(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    await score(cases_app, clock, case["id"], 70, risk_tier=RiskTier.HIGH, treatment="call")
    await score(
        cases_app, clock, case["id"], 10, scored_at=clock.now - timedelta(hours=1)
    )  # late arrival of an older score
    await score(cases_app, clock, case["id"], 5, challenger=True)
    now = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert (now["priority"], now["risk_tier"], now["treatment"]) == (70.0, "high", "call")


async def outcome(
    app: FastAPI, clock: Clock, case_id: str, **fields: Any
) -> ContactOutcomeRecorded:
    event = ContactOutcomeRecorded(
        outcome_id=fields.pop("outcome_id", uuid.uuid4()),
        attempt_id=None,
        case_id=uuid.UUID(case_id),
        debtor_id=None,
        channel="call",
        occurred_at=clock.now - timedelta(minutes=5),
        **fields,
    )
    async with app.state.runtime.sessions() as session, session.begin():
        await service.record_outcome(
            session,
            event=event,
            ctx=service.Context(now=clock.now, correlation_id="t", tenant="default"),
        )
    return event


async def test_promise_taken_on_a_call_becomes_a_ptp_once(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    promised = clock.today + timedelta(days=7)
    first = await outcome(
        cases_app,
        clock,
        case["id"],
        result=OutcomeResult.PROMISE_TO_PAY,
        promised_amount=Decimal("800.00"),
        promised_date=promised,
        agency="Far East Recovery",
    )
    await outcome(
        cases_app,
        clock,
        case["id"],
        outcome_id=first.outcome_id,
        result=OutcomeResult.PROMISE_TO_PAY,
        promised_amount=Decimal("800.00"),
        promised_date=promised,
    )
    [ptp] = (await http.get(f"/v1/cases/{case['id']}/promises")).json()
    assert (ptp["amount"], ptp["promised_date"]) == ("800.00", promised.isoformat())
    assert ptp["taken_by"] == "call:Far East Recovery"
    got = (await http.get(f"/v1/cases/{case['id']}")).json()
    assert got["last_right_party_contact_at"] is not None
    [event] = await events(cases_app, "ptp.created")
    assert event["payload"]["outcome_id"] == str(first.outcome_id)


async def test_dispute_on_a_call_places_a_hold_and_no_answer_changes_nothing(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    before = await snapshot(cases_app)
    await outcome(cases_app, clock, case["id"], result=OutcomeResult.NO_ANSWER)
    assert await snapshot(cases_app) == before
    await outcome(cases_app, clock, case["id"], result=OutcomeResult.DISPUTE_RAISED)
    await outcome(cases_app, clock, case["id"], result=OutcomeResult.DISPUTE_RAISED)
    holds = (await http.get(f"/v1/cases/{case['id']}/holds")).json()
    assert [h["kind"] for h in holds] == ["dispute"]
    assert await count(cases_app, "outbox", "event_type = 'case.hold_placed'") == 1


async def test_assignment_refusals(
    http: httpx.AsyncClient, cases_app: FastAPI, clock: Clock
) -> None:
    case = await open_case(http, clock)
    before = await snapshot(cases_app)
    problem(
        await http.post(
            "/v1/collectors", json={"name": "x", "team_id": str(uuid.uuid4()), "capacity": 3}
        ),
        422,
    )
    problem(
        await http.post(
            "/v1/collectors", json={"name": "x", "team_id": str(uuid.uuid4()), "capacity": 0}
        ),
        422,
    )
    problem(
        await http.post(
            f"/v1/queues/{uuid.uuid4()}/next", json={"collector_id": str(uuid.uuid4())}
        ),
        404,
    )
    problem(
        await http.post("/v1/queues", json={"name": "q", "criteria": {"buckets": ["1-99"]}}), 422
    )
    problem(
        await http.post(
            f"/v1/cases/{case['id']}/assign",
            json={"collector_id": str(uuid.uuid4()), "assigned_by": "m"},
        ),
        422,
    )
    assert await snapshot(cases_app) == before
