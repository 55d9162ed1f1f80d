"""Scoring against real databases: the registry (champion, challengers, rollback), scoring with
reason codes, overrides, batch rescoring and stability monitoring, over the HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.scoring import service
from services.scoring.app import create_app
from services.scoring.scorecard import Scorecard
from services.scoring.settings import ScoringSettings
from services.scoring.training import train_scorecard
from shared.contracts import CaseOpened, CollateralType, utc_now
from shared.messaging import outbox
from tests.auth_support import headers as auth_headers
from tests.conftest import MigratedDatabaseFactory
from tests.unit.test_scorecard import synthetic


@pytest.fixture(scope="module")
def models() -> tuple[Scorecard, Scorecard]:
    data = synthetic(rows=3000, seed=3)
    first = train_scorecard(data, target="bad", id_column="id", model_id="synthetic", version="1")
    second = train_scorecard(
        synthetic(rows=3000, seed=4),
        target="bad",
        id_column="id",
        model_id="synthetic",
        version="2",
    )
    return first.scorecard, second.scorecard


@pytest.fixture
def url(migrated_database: MigratedDatabaseFactory) -> str:
    return migrated_database("scoring")


@pytest.fixture
async def app(
    url: str, tmp_path: Any, models: tuple[Scorecard, Scorecard]
) -> AsyncIterator[FastAPI]:
    model_file = tmp_path / "default.json"
    model_file.write_text(models[0].model_dump_json())
    application = create_app(
        ScoringSettings(database_url=url, enable_bus=False, default_model_path=str(model_file))
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        headers=auth_headers(), transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as c:
        yield c


def opened(
    features: dict[str, float | str | None], *, dpd: int = 20, amount: str = "8000"
) -> CaseOpened:
    return CaseOpened(
        case_id=uuid.uuid4(),
        account_id="A",
        debtor_id=uuid.uuid4(),
        debtor_time_zone="UTC",
        product="card",
        currency="CNY",
        principal=amount,
        interest="0",
        fees="0",
        amount_outstanding=amount,
        due_date=date(2026, 1, 1),
        days_past_due=dpd,
        industry_risk=10,
        opened_at=utc_now(),
        collateral_type=CollateralType.NONE,
        risk_features=features,
    )


async def score(app: FastAPI, event: CaseOpened, *, tenant: str = "default") -> None:
    async with app.state.runtime.sessions() as session, session.begin():
        await service.record_case_opened(
            session,
            tenant=tenant,
            event=event,
            correlation_id="c",
            causation_id=str(uuid.uuid4()),
            now=utc_now(),
            ctx=app.state.scoring,
        )


RISKY: dict[str, float | str | None] = {"util": 1.15, "age": 21, "region": "west", "income": None}
SAFE: dict[str, float | str | None] = {"util": 0.02, "age": 70, "region": "north", "income": 30000}


async def test_default_model_scores_with_reasons_that_add_up(
    app: FastAPI, client: httpx.AsyncClient, models: tuple[Scorecard, Scorecard]
) -> None:
    registry = (await client.get("/v1/models")).json()
    assert [(m["key"], m["role"]) for m in registry] == [("synthetic@1", "champion")]
    risky, safe = opened(RISKY), opened(SAFE)
    await score(app, risky)
    await score(app, safe)
    bad = (await client.get(f"/v1/scores/{risky.case_id}")).json()["latest"]
    good = (await client.get(f"/v1/scores/{safe.case_id}")).json()["latest"]
    assert bad["model_id"] == "synthetic"
    assert bad["model_version"] == "1"
    assert bad["score_points"] < good["score_points"]
    assert bad["probability_of_default"] > good["probability_of_default"]
    assert bad["reasons"][0]["code"] == "util"
    assert "points against the best band" in bad["reasons"][0]["text"]
    parts = models[0].score(RISKY)
    assert bad["score_points"] == sum(p.points for p in parts.parts)
    assert bad["treatment"]
    assert bad["strategy_rule"]
    assert bad["early_warning"] in {"red", "orange", "yellow", "blue"}
    async with app.state.runtime.sessions() as session:
        events = (
            await session.scalars(
                sa.select(outbox.c.value).where(outbox.c.event_type == "case.scored")
            )
        ).all()
    payloads = [json.loads(v)["payload"] for v in events]
    assert {p["case_id"] for p in payloads} == {str(risky.case_id), str(safe.case_id)}
    assert all(p["score_points"] is not None and p["reasons"] is not None for p in payloads)


async def test_challenger_takes_its_traffic_share_and_rollback_restores(
    app: FastAPI, client: httpx.AsyncClient, models: tuple[Scorecard, Scorecard]
) -> None:
    created = await client.post("/v1/models", json=json.loads(models[1].model_dump_json()))
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "candidate"
    again = await client.post("/v1/models", json=json.loads(models[1].model_dump_json()))
    assert again.status_code == 409
    too_much = await client.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "challenger", "traffic_share": 0.6, "actor": "mo", "reason": "trial"},
    )
    assert too_much.status_code == 422
    ok = await client.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "challenger", "traffic_share": 0.3, "actor": "mo", "reason": "trial"},
    )
    assert ok.status_code == 200, ok.text
    # Fixed case ids: the traffic split is a hash of the id, so random ids made the share a
    # coin toss (the per-case assertion below is what proves the routing).
    events = [
        opened(RISKY).model_copy(update={"case_id": uuid.uuid5(uuid.NAMESPACE_URL, f"case-{i}")})
        for i in range(200)
    ]
    for e in events:
        await score(app, e)
    versions = []
    for e in events:
        latest = (await client.get(f"/v1/scores/{e.case_id}")).json()["latest"]
        versions.append(latest["model_version"])
        assert latest["challenger"] == (latest["model_version"] == "2")
        assert latest["challenger"] == (service.traffic_bucket(e.case_id) < 0.3)
    share = versions.count("2") / len(versions)
    assert 0.2 < share < 0.4, share

    promoted = await client.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "champion", "actor": "mo", "reason": "won the trial"},
    )
    assert promoted.json()["role"] == "champion"
    roles = {m["key"]: m["role"] for m in (await client.get("/v1/models")).json()}
    assert roles == {"synthetic@1": "retired", "synthetic@2": "champion"}
    back = await client.post("/v1/models:rollback", json={"actor": "mo", "reason": "drift"})
    assert back.status_code == 200, back.text
    roles = {m["key"]: m["role"] for m in (await client.get("/v1/models")).json()}
    assert roles == {"synthetic@1": "champion", "synthetic@2": "retired"}
    detail = (await client.get("/v1/models/synthetic@1")).json()
    assert detail["card"]["test"]["auc"] > 0.6
    assert (await client.get("/v1/models/nope@9")).status_code == 404


async def test_invalid_model_documents_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/models", json={"format": "qingshou.scorecard/1"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "model_id" in response.json()["detail"]


async def test_override_is_recorded_and_published(app: FastAPI, client: httpx.AsyncClient) -> None:
    event = opened(RISKY)
    await score(app, event)
    missing = await client.post(
        f"/v1/scores/{event.case_id}/overrides",
        json={"reason": "debtor in hospital", "overridden_by": "li"},
    )
    assert missing.status_code == 422
    done = await client.post(
        f"/v1/scores/{event.case_id}/overrides",
        json={"risk_tier": "low", "reason": "debtor in hospital", "overridden_by": "li"},
    )
    assert done.status_code == 201, done.text
    scores = (await client.get(f"/v1/scores/{event.case_id}")).json()
    assert scores["effective_tier"] == "low"
    assert scores["overrides"][0]["overridden_by"] == "li"
    async with app.state.runtime.sessions() as session:
        types = (await session.scalars(sa.select(outbox.c.event_type))).all()
    assert "score.overridden" in types
    unknown = await client.post(
        f"/v1/scores/{uuid.uuid4()}/overrides",
        json={"risk_tier": "low", "reason": "x" * 5, "overridden_by": "li"},
    )
    assert unknown.status_code == 404


async def test_batch_rescoring_and_monitoring(app: FastAPI, client: httpx.AsyncClient) -> None:
    events = [opened(RISKY if i % 2 else SAFE) for i in range(40)]
    for e in events:
        await score(app, e)
    unknown = uuid.uuid4()
    some = await client.post(
        "/v1/scores:batch", json={"case_ids": [str(events[0].case_id), str(unknown)]}
    )
    assert some.json() == {"scored": 1, "unknown_case_ids": [str(unknown)]}
    everything = await client.post("/v1/scores:batch", json={})
    assert everything.json()["scored"] == 40
    history = (await client.get(f"/v1/scores/{events[0].case_id}")).json()["history"]
    assert len(history) == 3
    report = (await client.get("/v1/models/synthetic@1/monitoring")).json()
    assert report["scores_compared"] == 81
    # Two kinds of applicant only: far from the training population.
    assert report["score_psi"]["status"] == "alert"
    assert {row["name"] for row in report["features"]} >= {"util", "age"}


def as_record(envelope_bytes: bytes, offset: int) -> Any:
    from tests.integration.test_message_processor import record

    return record(envelope_bytes, offset)


async def test_material_events_rescore_and_unknown_cases_are_dead_lettered(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from services.scoring.handlers import make_handlers
    from shared.bus import MessageProcessor
    from shared.contracts import CaseUpdated, PaymentReceived, PtpBroken, build_envelope

    proc = MessageProcessor(
        consumer_name="scoring",
        handlers=make_handlers(app.state.scoring),
        max_retries=0,
        retry_backoff_ms=0,
    )
    event = opened(SAFE, dpd=5, amount="60000")
    cid = event.case_id
    now = utc_now()

    def env(payload: Any) -> bytes:
        return build_envelope(
            payload, key=str(cid), producer="cases", correlation_id="c", tenant="default"
        ).to_bytes()

    stream = [
        env(event),
        env(
            CaseUpdated(
                case_id=cid,
                days_past_due=45,
                dpd_bucket="31-60",
                stage="late",
                amount_outstanding="60000",
                currency="CNY",
                updated_at=now,
            )
        ),
        env(
            PtpBroken(
                case_id=cid,
                ptp_id=uuid.uuid4(),
                promised_amount="1000",
                promised_date=date(2026, 1, 5),
                paid_amount="0",
                broken_at=now,
                broken_promises_total=2,
            )
        ),
        env(
            PaymentReceived(
                case_id=cid,
                payment_id=uuid.uuid4(),
                external_payment_id="p-1",
                amount="60000",
                currency="CNY",
                received_at=now,
                amount_outstanding_after="0",
                days_past_due_after=0,
            )
        ),
        env(
            CaseUpdated(
                case_id=uuid.uuid4(),
                days_past_due=1,
                dpd_bucket="1-7",
                stage="reminder",
                amount_outstanding="1",
                currency="CNY",
                updated_at=now,
            )
        ),
    ]
    async with app.state.runtime.sessions() as session, session.begin():
        outcomes = [
            (await proc.process(session, as_record(value, i))).outcome
            for i, value in enumerate(stream)
        ]
    assert outcomes == ["processed"] * 4 + ["dead_lettered"]
    history = (await client.get(f"/v1/scores/{cid}")).json()["history"]
    # Opened, updated and broken promise each scored; the payment closed the case.
    assert len(history) == 3
    rules = [h["strategy_rule"] for h in reversed(history)]
    assert rules[1] != rules[0]  # 45 DPD is another stage than 5
    assert rules[2] == "broken-promises-legal"
    rescored = await client.post("/v1/scores:batch", json={})
    assert rescored.json()["scored"] == 0  # closed cases are not rescored


async def test_the_rescoring_job_runs_on_its_interval(
    url: str, tmp_path: Any, models: tuple[Scorecard, Scorecard]
) -> None:
    model_file = tmp_path / "m.json"
    model_file.write_text(models[0].model_dump_json())
    application = create_app(
        ScoringSettings(
            database_url=url,
            enable_bus=False,
            default_model_path=str(model_file),
            rescore_interval_hours=0.5 / 3600,
        )
    )
    import asyncio

    async with application.router.lifespan_context(application):
        for _ in range(3):
            await score(application, opened(RISKY))
        async with httpx.AsyncClient(
            headers=auth_headers(),
            transport=httpx.ASGITransport(app=application),
            base_url="http://s",
        ) as c:
            await asyncio.sleep(1.6)
            async with application.state.runtime.sessions() as session:
                count = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(outbox)
                    .where(outbox.c.event_type == "case.scored")
                )
            assert count is not None
            assert count >= 6, count  # three first scores, then at least one rescoring round
            assert (await c.get("/healthz")).status_code == 200
