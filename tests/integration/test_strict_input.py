"""JSON request bodies are strict about numbers and booleans: "12abc", "12" or 12.0 for an
integer, "true" or 1 for a boolean and "12" or true for a float are a 422 problem naming the
field, and nothing is written; JSON numbers and booleans still pass. Money stays a decimal
string (a JSON number is accepted, as the OpenAPI documents; "12abc" is refused). Query
parameters are text by nature and stay lax ("12" is 12) but "12abc" is a 422 there too."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.cases.app import create_app as cases_app
from services.cases.settings import CasesSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import ComplianceSettings
from services.contact.app import create_app as contact_app
from services.contact.settings import ContactSettings
from services.scoring import service as scoring_service
from services.scoring.app import create_app as scoring_app
from services.scoring.scorecard import Scorecard
from services.scoring.settings import ScoringSettings
from services.scoring.training import train_scorecard
from shared.contracts import CaseOpened, CollateralType, utc_now
from tests.auth_support import headers
from tests.helpers import migrate_service
from tests.unit.test_scorecard import synthetic

#: What lax mode used to coerce (or, for "12abc", already refused), by the field's JSON type.
NOT_AN_INT: list[object] = ["12abc", "12", 12.0, True]
NOT_A_BOOL: list[object] = ["true", "yes", 1, "1"]
NOT_A_FLOAT: list[object] = ["12abc", "12", True]
NOT_MONEY: list[object] = ["12abc", "NaN", True]

Factory = Callable[[str, Path], FastAPI]


async def row_counts(app: FastAPI) -> dict[str, int]:
    """Rows in every table of the service's database: a refusal must change none of them."""
    async with app.state.runtime.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        return {
            name: int((await conn.execute(sa.text(f'SELECT count(*) FROM "{name}"'))).scalar_one())
            for name in names
            if name != "alembic_version"
        }


def refused(response: httpx.Response, field: str) -> None:
    """A 422 problem whose invalid-params name `field` (dotted, e.g. body.debtor.phone)."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    names = [param["name"] for param in problem["invalid-params"]]
    assert any(name == field or name.startswith(field + ".") for name in names), (field, names)


async def refuses_each(
    app: FastAPI,
    send: Callable[[object], Any],
    field: str,
    values: list[object],
) -> None:
    """Each value sent in `field` is refused and writes nothing."""
    before = await row_counts(app)
    for value in values:
        response: httpx.Response = await send(value)
        try:
            refused(response, field)
        except AssertionError as exc:
            raise AssertionError(f"{field} = {value!r}: {exc}") from None
    assert await row_counts(app) == before, field


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[Callable[[str, Factory], Any]]:
    """Starts a service's app on a migrated SQLite database (this tier is about HTTP)."""
    started: list[FastAPI] = []
    contexts: list[Any] = []

    async def make(name: str, factory: Factory) -> FastAPI:
        # Alembic runs its own event loop: migrate in a worker thread.
        url = await asyncio.to_thread(
            migrate_service, name, f"sqlite+aiosqlite:///{tmp_path / name}.db"
        )
        app = factory(url, tmp_path)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        started.append(app)
        return app

    yield make
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=headers(), transport=httpx.ASGITransport(app=app), base_url="http://svc"
    )


# --- cases -------------------------------------------------------------------------------------


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": f"LN-{uuid.uuid4().hex[:12]}",
        "debtor": {"name": "张三", "phone": "+8613800138000", "time_zone": "Asia/Shanghai"},
        "product": "consumer_loan",
        "currency": "CNY",
        "principal": "10000.00",
        "due_date": (date.today() - timedelta(days=20)).isoformat(),
        "industry_risk": 40,
    }
    body.update(overrides)
    return body


def cases_factory(url: str, tmp_path: Path) -> FastAPI:
    return cases_app(
        CasesSettings(
            database_url=url,
            enable_bus=False,
            enable_jobs=False,
            import_dir=str(tmp_path / "imports"),
        )
    )


async def test_cases_bodies_refuse_coerced_numbers_and_booleans(make_app: Any) -> None:
    app = await make_app("cases", cases_factory)
    async with client(app) as http:

        def open_with(field: str) -> Callable[[object], Any]:
            return lambda value: http.post("/v1/cases", json=case_body(**{field: value}))

        await refuses_each(app, open_with("industry_risk"), "body.industry_risk", NOT_A_FLOAT)
        await refuses_each(app, open_with("small_business"), "body.small_business", NOT_A_BOOL)
        await refuses_each(app, open_with("principal"), "body.principal", NOT_MONEY)
        await refuses_each(
            app,
            lambda value: http.post("/v1/cases", json=case_body(risk_features={"age": value})),
            "body.risk_features.age",
            [True],
        )
        await refuses_each(
            app,
            lambda value: http.post(
                "/v1/cases",
                json=case_body(
                    debtor={
                        "name": "张三",
                        "time_zone": "Asia/Shanghai",
                        "contact_points": [
                            {"kind": "phone", "value": "+8613800138000", "consent": value}
                        ],
                    }
                ),
            ),
            "body.debtor.contact_points.0.consent",
            NOT_A_BOOL,
        )

        team = (await http.post("/v1/teams", json={"name": "early"})).json()
        collector = {"name": "Li Wei", "team_id": team["id"], "capacity": 5}
        await refuses_each(
            app,
            lambda value: http.post("/v1/collectors", json={**collector, "capacity": value}),
            "body.capacity",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/collectors", json={**collector, "active": value}),
            "body.active",
            NOT_A_BOOL,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/agencies", json={"name": "A", "commission_rate": value}),
            "body.commission_rate",
            NOT_A_FLOAT,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/allocation/run", json={"limit": value}),
            "body.limit",
            NOT_AN_INT,
        )

        # JSON numbers and booleans pass; money as a JSON number too (documented: number or
        # decimal string), kept to the cent.
        opened = await http.post(
            "/v1/cases",
            json=case_body(
                industry_risk=40.5,
                small_business=True,
                principal=12.5,
                risk_features={"age": 37, "util": 0.4, "region": "12"},
            ),
        )
        assert opened.status_code == 201, opened.text
        case = opened.json()
        assert (case["industry_risk"], case["small_business"]) == (40.5, True)
        assert case["principal"] == "12.50"
        assert case["risk_features"] == {"age": 37.0, "util": 0.4, "region": "12"}
        made = await http.post("/v1/collectors", json={**collector, "active": False})
        assert made.status_code == 201, made.text
        assert (made.json()["capacity"], made.json()["active"]) == (5, False)
        agency = await http.post("/v1/agencies", json={"name": "A", "commission_rate": 0})
        assert agency.status_code == 201, agency.text
        ran = await http.post("/v1/allocation/run", json={"limit": 10})
        assert ran.status_code == 200, ran.text

        pay = {"external_payment_id": "P-1", "currency": "CNY", "paid_on": date.today().isoformat()}
        await refuses_each(
            app,
            lambda value: http.post(
                f"/v1/cases/{case['id']}/payments",
                json={**pay, "amount": value},
            ),
            "body.amount",
            [*NOT_MONEY, "0.001"],
        )
        paid = await http.post(
            f"/v1/cases/{case['id']}/payments",
            json={**pay, "amount": "1.00"},
        )
        assert paid.status_code == 201, paid.text

        # Query parameters are text: "12" is 12, "12abc" is refused.
        assert (await http.get("/v1/cases", params={"limit": "12"})).status_code == 200
        refused(await http.get("/v1/cases", params={"limit": "12abc"}), "query.limit")
        refused(await http.get("/v1/cases", params={"min_balance": "12abc"}), "query.min_balance")
        refused(await http.get("/v1/cases", params={"on_hold": "maybe"}), "query.on_hold")
        refused(await http.get("/v1/cases/12abc"), "path.case_id")


# --- scoring -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scorecard() -> Scorecard:
    data = synthetic(rows=2000, seed=3)
    trained = train_scorecard(data, target="bad", id_column="id", model_id="strict", version="1")
    return trained.scorecard


async def test_scoring_bodies_refuse_coerced_numbers(make_app: Any, scorecard: Scorecard) -> None:
    def factory(url: str, tmp_path: Path) -> FastAPI:
        model_file = tmp_path / "default.json"
        model_file.write_text(scorecard.model_dump_json())
        return scoring_app(
            ScoringSettings(database_url=url, enable_bus=False, default_model_path=str(model_file))
        )

    app = await make_app("scoring", factory)
    event = CaseOpened(
        case_id=uuid.uuid4(),
        account_id="A",
        debtor_id=uuid.uuid4(),
        debtor_time_zone="UTC",
        product="card",
        currency="CNY",
        principal="8000",
        interest="0",
        fees="0",
        amount_outstanding="8000",
        due_date=date(2026, 1, 1),
        days_past_due=20,
        industry_risk=10,
        opened_at=utc_now(),
        collateral_type=CollateralType.NONE,
        risk_features={"util": 0.5, "age": 40},
    )
    async with app.state.runtime.sessions() as session, session.begin():
        await scoring_service.record_case_opened(
            session,
            tenant="default",
            event=event,
            correlation_id="c",
            causation_id=str(uuid.uuid4()),
            now=utc_now(),
            ctx=app.state.scoring,
        )
    override = {"reason": "talked to the debtor", "overridden_by": "supervisor:wang"}
    async with client(app) as http:
        await refuses_each(
            app,
            lambda value: http.post(
                f"/v1/scores/{event.case_id}/overrides", json={**override, "priority": value}
            ),
            "body.priority",
            NOT_A_FLOAT,
        )
        activate = {"role": "challenger", "actor": "admin:li", "reason": "trial"}
        await refuses_each(
            app,
            lambda value: http.post(
                "/v1/models/strict@1/activate", json={**activate, "traffic_share": value}
            ),
            "body.traffic_share",
            ["0.2", "12abc", True],
        )
        made = await http.post(
            f"/v1/scores/{event.case_id}/overrides", json={**override, "priority": 80}
        )
        assert made.status_code == 201, made.text
        assert made.json()["priority"] == 80.0
        refused(await http.get("/v1/models/strict@1/monitoring?last=12abc"), "query.last")
        assert (await http.get("/v1/models/strict@1/monitoring?last=12")).status_code == 200


# --- contact -----------------------------------------------------------------------------------


async def test_contact_bodies_refuse_coerced_numbers_and_booleans(make_app: Any) -> None:
    app = await make_app(
        "contact",
        lambda url, _: contact_app(ContactSettings(database_url=url, enable_bus=False)),
    )
    policy: dict[str, Any] = {
        "packs": ["cn"],
        "changed_by": "compliance-officer-li",
        "reason": "stricter local rules",
    }
    decision = {
        "debtor_id": str(uuid.uuid4()),
        "case_id": str(uuid.uuid4()),
        "channel": "call",
        "at": "2026-11-22T06:30:00Z",
        "zones": ["Asia/Shanghai"],
    }
    async with client(app) as http:
        put = http.put
        await refuses_each(
            app,
            lambda value: put("/v1/contact/policy", json={**policy, "min_gap_minutes": value}),
            "body.min_gap_minutes",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: put("/v1/contact/policy", json={**policy, "caps": {"CN-SMS-DAY": value}}),
            "body.caps.CN-SMS-DAY",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: put("/v1/contact/policy", json={**policy, "prefer_answer_hours": value}),
            "body.prefer_answer_hours",
            NOT_A_BOOL,
        )
        for field in ("third_party", "consented", "workplace"):

            def decide(value: object, field: str = field) -> Any:
                return http.post("/v1/contact/decisions", json={**decision, field: value})

            await refuses_each(app, decide, f"body.{field}", NOT_A_BOOL)
        outcome = {
            "outcome_id": str(uuid.uuid4()),
            "case_id": decision["case_id"],
            "channel": "call",
            "result": "promise_to_pay",
            "occurred_at": datetime.now(UTC).isoformat(),
            "dialer": "dialer-1",
        }
        await refuses_each(
            app,
            lambda value: http.post(
                "/v1/contact/outcomes", json={**outcome, "promised_amount": value}
            ),
            "body.promised_amount",
            NOT_MONEY,
        )
        await refuses_each(
            app,
            lambda value: http.post(
                "/v1/contact/outcomes", json={**outcome, "duration_seconds": value}
            ),
            "body.duration_seconds",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/contact/outcomes", json={**outcome, "automated": value}),
            "body.automated",
            NOT_A_BOOL,
        )
        reported = await http.post(
            "/v1/contact/outcomes", json={**outcome, "duration_seconds": 30, "automated": True}
        )
        assert reported.status_code == 201, reported.text  # an unknown case is kept and flagged

        set_ = await put(
            "/v1/contact/policy",
            json={
                **policy,
                "min_gap_minutes": 60,
                "caps": {"CN-SMS-DAY": 1},
                "prefer_answer_hours": True,
            },
        )
        assert set_.status_code == 200, set_.text
        assert (set_.json()["version"], set_.json()["min_gap_minutes"]) == (1, 60)
        decided = await http.post(
            "/v1/contact/decisions", json={**decision, "third_party": False, "workplace": False}
        )
        assert decided.status_code in (200, 404), decided.text  # past validation either way
        refused(
            await http.get("/v1/dialer/worklist?channel=call&dialer=d&limit=12abc"), "query.limit"
        )
        leased = await http.get("/v1/dialer/worklist?channel=call&dialer=d&limit=12")
        assert leased.status_code == 200, leased.text


# --- compliance --------------------------------------------------------------------------------


async def test_compliance_bodies_refuse_coerced_numbers_and_booleans(make_app: Any) -> None:
    app = await make_app(
        "compliance",
        lambda url, _: compliance_app(ComplianceSettings(database_url=url, enable_bus=False)),
    )
    review = {
        "subject": f"outcome:{uuid.uuid4()}",
        "reviewer_kind": "qa",
        "reviewer": "qa-zhao",
        "period": "2026-11",
        "score": 85,
        "passed": True,
    }
    async with client(app) as http:
        await refuses_each(
            app,
            lambda value: http.post("/v1/audit/purge", json={"limit": value}),
            "body.limit",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/audit/purge", json={"dry_run": value}),
            "body.dry_run",
            NOT_A_BOOL,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/qa/reviews", json={**review, "score": value}),
            "body.score",
            NOT_AN_INT,
        )
        await refuses_each(
            app,
            lambda value: http.post("/v1/qa/reviews", json={**review, "passed": value}),
            "body.passed",
            NOT_A_BOOL,
        )

        purged = await http.post("/v1/audit/purge", json={"dry_run": True, "limit": 10})
        assert purged.status_code == 200, purged.text
        assert purged.json()["dry_run"] is True
        # Valid types get past validation: compliance has simply seen no such contact.
        reviewed = await http.post("/v1/qa/reviews", json=review)
        assert reviewed.status_code == 404, reviewed.text
        refused(await http.get("/v1/audit/entries?after_seq=12abc"), "query.after_seq")
        assert (await http.get("/v1/audit/entries?after_seq=12")).status_code == 200
        refused(await http.get("/v1/audit/proof/12abc"), "path.seq")
