"""Scoring tenancy and access on real databases: scores, overrides, batch rescoring and
monitoring stay inside the caller's tenant, consumed events never cross tenants, model roles
are per tenant (inherited from the default tenant until the first activation) and every
activation is published; every route checks its credential and scope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.scoring.handlers import make_handlers
from services.scoring.models import ModelActivation, Score, ScoredCase, ScoreOverride
from services.scoring.scorecard import Scorecard
from shared.auth import KIND_SCOPES, ClientKind, Scope
from shared.bus import MessageProcessor
from shared.contracts import CaseUpdated, Envelope, build_envelope, utc_now
from shared.messaging import inbox, outbox
from tests.auth_support import headers as auth_headers
from tests.integration import test_scoring_service as scoring_tests
from tests.integration.test_scoring_service import RISKY, SAFE, as_record, opened, score

# The scoring tests' trained models, migrated database and app (synthetic@1 is the default
# tenant's champion); pytest finds fixtures by these names.
models = scoring_tests.models
url = scoring_tests.url
app = scoring_tests.app

ACME, GLOBEX = "acme", "globex"
Client = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def client_of(app: FastAPI) -> AsyncIterator[Client]:
    """`client_of(tenant, kind="admin")`: an HTTP client holding that tenant's key of `kind`."""
    made: list[httpx.AsyncClient] = []

    def make(tenant: str, kind: str = "admin") -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            headers=auth_headers(kind=kind, tenant=tenant),
            transport=httpx.ASGITransport(app=app),
            base_url="http://s",
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def published(app: FastAPI, event_type: str) -> list[Envelope]:
    async with app.state.runtime.sessions() as session:
        values = (
            await session.scalars(
                sa.select(outbox.c.value)
                .where(outbox.c.event_type == event_type)
                .order_by(outbox.c.id)
            )
        ).all()
    return [Envelope.from_bytes(v) for v in values]


async def roles(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.get("/v1/models")
    assert response.status_code == 200, response.text
    return {m["key"]: m["role"] for m in response.json()}


async def test_scores_and_overrides_stay_in_their_tenant(app: FastAPI, client_of: Client) -> None:
    acme_case, globex_case = opened(RISKY), opened(SAFE)
    await score(app, acme_case, tenant=ACME)
    await score(app, globex_case, tenant=GLOBEX)
    acme, globex = client_of(ACME), client_of(GLOBEX)

    assert (await acme.get(f"/v1/scores/{acme_case.case_id}")).status_code == 200
    assert (await globex.get(f"/v1/scores/{globex_case.case_id}")).status_code == 200
    foreign = await acme.get(f"/v1/scores/{globex_case.case_id}")
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert (await globex.get(f"/v1/scores/{acme_case.case_id}")).status_code == 404
    # The default tenant (the platform's own key) sees neither.
    assert (await client_of("default").get(f"/v1/scores/{acme_case.case_id}")).status_code == 404

    body = {"risk_tier": "low", "reason": "debtor in hospital", "overridden_by": "li"}
    refused = await acme.post(f"/v1/scores/{globex_case.case_id}/overrides", json=body)
    assert refused.status_code == 404
    assert (await globex.get(f"/v1/scores/{globex_case.case_id}")).json()["overrides"] == []
    done = await acme.post(f"/v1/scores/{acme_case.case_id}/overrides", json=body)
    assert done.status_code == 201, done.text
    assert (await acme.get(f"/v1/scores/{acme_case.case_id}")).json()["effective_tier"] == "low"

    async with app.state.runtime.sessions() as session:
        stored = {
            (row.case_id, row.tenant)
            for row in (await session.scalars(sa.select(ScoredCase))).all()
        }
        assert stored == {(acme_case.case_id, ACME), (globex_case.case_id, GLOBEX)}
        score_tenants = dict((await session.execute(sa.select(Score.case_id, Score.tenant))).all())
        assert score_tenants == {acme_case.case_id: ACME, globex_case.case_id: GLOBEX}
        override_tenants = (await session.scalars(sa.select(ScoreOverride.tenant))).all()
        assert override_tenants == [ACME]

    scored = {e.payload["case_id"]: e for e in await published(app, "case.scored")}
    assert scored[str(acme_case.case_id)].tenant == ACME
    assert scored[str(globex_case.case_id)].tenant == GLOBEX
    # Scored by the consumer side (no request): no actor.
    assert scored[str(acme_case.case_id)].actor is None
    [overridden] = await published(app, "score.overridden")
    assert overridden.tenant == ACME
    assert overridden.actor == "admin:test-admin"


async def test_batch_rescoring_and_monitoring_see_only_the_callers_cases(
    app: FastAPI, client_of: Client
) -> None:
    acme_cases = [opened(RISKY) for _ in range(3)]
    globex_cases = [opened(SAFE) for _ in range(2)]
    for event in acme_cases:
        await score(app, event, tenant=ACME)
    for event in globex_cases:
        await score(app, event, tenant=GLOBEX)
    acme, globex = client_of(ACME), client_of(GLOBEX)

    named = await acme.post(
        "/v1/scores:batch",
        json={"case_ids": [str(acme_cases[0].case_id), str(globex_cases[0].case_id)]},
    )
    assert named.json() == {"scored": 1, "unknown_case_ids": [str(globex_cases[0].case_id)]}
    everything = await acme.post("/v1/scores:batch", json={})
    assert everything.json() == {"scored": 3, "unknown_case_ids": []}
    history = (await globex.get(f"/v1/scores/{globex_cases[0].case_id}")).json()["history"]
    assert len(history) == 1

    acme_report = (await acme.get("/v1/models/synthetic@1/monitoring")).json()
    globex_report = (await globex.get("/v1/models/synthetic@1/monitoring")).json()
    assert acme_report["scores_compared"] == 3 + 1 + 3
    assert globex_report["scores_compared"] == 2
    rescored = [e for e in await published(app, "case.scored") if e.causation_id is None]
    assert len(rescored) == 4
    assert {e.tenant for e in rescored} == {ACME}
    assert {e.actor for e in rescored} == {"admin:test-admin"}


async def test_consumed_events_keep_their_tenant_and_never_cross_it(app: FastAPI) -> None:
    proc = MessageProcessor(
        consumer_name="scoring",
        handlers=make_handlers(app.state.scoring),
        max_retries=3,
        retry_backoff_ms=0,
    )
    event = opened(SAFE, dpd=5, amount="60000")
    cid = event.case_id
    update = CaseUpdated(
        case_id=cid,
        days_past_due=90,
        dpd_bucket="61-90",
        stage="late",
        amount_outstanding="60000",
        currency="CNY",
        updated_at=utc_now(),
    )

    def env(payload: Any, tenant: str) -> bytes:
        return build_envelope(
            payload, key=str(cid), producer="cases", correlation_id="c", tenant=tenant
        ).to_bytes()

    stream = [env(event, ACME), env(update, GLOBEX), env(event, GLOBEX), env(update, ACME)]
    async with app.state.runtime.sessions() as session, session.begin():
        outcomes = [
            (await proc.process(session, as_record(value, i))).outcome
            for i, value in enumerate(stream)
        ]
    assert outcomes == ["processed", "dead_lettered", "dead_lettered", "processed"]

    async with app.state.runtime.sessions() as session:
        errors = (
            await session.scalars(
                sa.select(inbox.c.error)
                .where(inbox.c.outcome == "dead_lettered")
                .order_by(inbox.c.kafka_offset)
            )
        ).all()
        snapshot = await session.get(ScoredCase, cid)
        scores = (
            await session.execute(
                sa.select(Score.tenant, Score.days_past_due).order_by(Score.scored_at)
            )
        ).all()
    assert len(errors) == 2
    async with app.state.runtime.sessions() as session:
        dead = (
            await session.scalars(
                sa.select(outbox.c.headers).where(outbox.c.event_type == "dead_letter")
            )
        ).all()
    # Refused at once, not after the retries an ordinary failure gets.
    assert [h["dlq_attempts"] for h in dead] == ["1", "1"]
    for error in errors:
        assert error is not None
        assert error.startswith("ForeignCase: ")
        assert "'globex'" in error
        assert "another tenant" in error
    assert snapshot is not None
    assert (snapshot.tenant, snapshot.days_past_due) == (ACME, 90)
    assert [tuple(row) for row in scores] == [(ACME, 5), (ACME, 90)]
    assert {e.tenant for e in await published(app, "case.scored")} == {ACME}


async def test_activation_and_rollback_change_only_the_callers_tenant(
    app: FastAPI, client_of: Client, models: tuple[Scorecard, Scorecard]
) -> None:
    acme, globex, platform = client_of(ACME), client_of(GLOBEX), client_of("default")
    registered = await acme.post("/v1/models", json=json.loads(models[1].model_dump_json()))
    assert registered.status_code == 201, registered.text
    # The registry is shared: every tenant sees the new version, as a candidate.
    for client in (acme, globex, platform):
        assert await roles(client) == {"synthetic@1": "champion", "synthetic@2": "candidate"}
    assert (await globex.get("/v1/models/synthetic@2")).json()["role"] == "candidate"

    promoted = await acme.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "champion", "actor": "mo", "reason": "better on our book"},
    )
    assert promoted.status_code == 200, promoted.text
    assert await roles(acme) == {"synthetic@1": "retired", "synthetic@2": "champion"}
    assert (await acme.get("/v1/models/synthetic@2")).json()["role"] == "champion"
    assert await roles(globex) == {"synthetic@1": "champion", "synthetic@2": "candidate"}
    assert await roles(platform) == {"synthetic@1": "champion", "synthetic@2": "candidate"}

    by_tenant = {tenant: opened(RISKY) for tenant in (ACME, GLOBEX, "default")}
    for tenant, event in by_tenant.items():
        await score(app, event, tenant=tenant)
    versions = {
        tenant: (await client_of(tenant).get(f"/v1/scores/{event.case_id}")).json()["latest"][
            "model_version"
        ]
        for tenant, event in by_tenant.items()
    }
    assert versions == {ACME: "2", GLOBEX: "1", "default": "1"}

    nothing = await globex.post("/v1/models:rollback", json={"actor": "mo", "reason": "undo"})
    assert nothing.status_code == 409
    back = await acme.post("/v1/models:rollback", json={"actor": "mo", "reason": "drift"})
    assert back.status_code == 200, back.text
    assert await roles(acme) == {"synthetic@1": "champion", "synthetic@2": "retired"}

    # The platform's change reaches globex, which has no roles of its own, but not acme.
    platform_promoted = await platform.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "champion", "actor": "ops", "reason": "new platform model"},
    )
    assert platform_promoted.status_code == 200, platform_promoted.text
    assert await roles(globex) == {"synthetic@1": "retired", "synthetic@2": "champion"}
    assert await roles(acme) == {"synthetic@1": "champion", "synthetic@2": "retired"}

    activations = await published(app, "model.activated")
    fields = ("model_key", "previous_model_key", "rollback")
    audit = [(e.tenant, e.actor, e.key, *(e.payload[f] for f in fields)) for e in activations]
    assert audit == [
        ("default", None, "default", "synthetic@1", None, False),  # first start
        (ACME, "admin:test-admin", ACME, "synthetic@2", "synthetic@1", False),
        (ACME, "admin:test-admin", ACME, "synthetic@1", "synthetic@2", True),
        ("default", "admin:test-admin", "default", "synthetic@2", "synthetic@1", False),
    ]
    assert all(e.producer == "scoring" for e in activations)
    async with app.state.runtime.sessions() as session:
        history = (
            await session.execute(
                sa.select(ModelActivation.tenant, ModelActivation.key, ModelActivation.role)
                .where(ModelActivation.tenant == ACME)
                .order_by(ModelActivation.id)
            )
        ).all()
        others = await session.scalar(
            sa.select(sa.func.count())
            .select_from(ModelActivation)
            .where(ModelActivation.tenant == GLOBEX)
        )
    assert [tuple(row) for row in history] == [
        (ACME, "synthetic@1", "champion"),  # inherited at the first activation
        (ACME, "synthetic@1", "retired"),
        (ACME, "synthetic@2", "champion"),
        (ACME, "synthetic@2", "retired"),
        (ACME, "synthetic@1", "champion"),
    ]
    assert others == 0


async def test_a_tenants_first_challenger_keeps_the_inherited_champion(
    app: FastAPI, client_of: Client, models: tuple[Scorecard, Scorecard]
) -> None:
    acme, platform = client_of(ACME), client_of("default")
    assert (
        await acme.post("/v1/models", json=json.loads(models[1].model_dump_json()))
    ).status_code == 201
    trial = await acme.post(
        "/v1/models/synthetic@2/activate",
        json={"role": "challenger", "traffic_share": 0.5, "actor": "mo", "reason": "trial"},
    )
    assert trial.status_code == 200, trial.text
    assert trial.json()["traffic_share"] == 0.5
    assert await roles(acme) == {"synthetic@1": "champion", "synthetic@2": "challenger"}
    assert await roles(platform) == {"synthetic@1": "champion", "synthetic@2": "candidate"}
    retire_champion = await acme.post(
        "/v1/models/synthetic@1/activate",
        json={"role": "retired", "actor": "mo", "reason": "no model left"},
    )
    assert retire_champion.status_code == 422
    [_, trial_event] = await published(app, "model.activated")
    assert (trial_event.tenant, trial_event.payload["model_key"]) == (ACME, "synthetic@2")
    assert trial_event.payload["previous_model_key"] is None


ROUTES: list[tuple[str, str, Scope]] = [
    ("GET", "/v1/scores/{case}", Scope.SCORES_READ),
    ("POST", "/v1/scores/{case}/overrides", Scope.SCORES_WRITE),
    ("POST", "/v1/scores:batch", Scope.SCORES_WRITE),
    ("GET", "/v1/models", Scope.SCORES_READ),
    ("GET", "/v1/models/synthetic@1", Scope.SCORES_READ),
    ("GET", "/v1/models/synthetic@1/monitoring", Scope.SCORES_READ),
    ("POST", "/v1/models", Scope.MODELS_ADMIN),
    ("POST", "/v1/models/synthetic@1/activate", Scope.MODELS_ADMIN),
    ("POST", "/v1/models:rollback", Scope.MODELS_ADMIN),
]


async def test_every_route_needs_a_credential_with_its_scope(
    app: FastAPI, client_of: Client, models: tuple[Scorecard, Scorecard]
) -> None:
    case = opened(RISKY)
    await score(app, case, tenant=ACME)
    bodies: dict[str, Any] = {
        "/v1/scores/{case}/overrides": {"risk_tier": "low", "reason": "ill", "overridden_by": "li"},
        "/v1/scores:batch": {},
        "/v1/models": json.loads(models[1].model_dump_json()),
        "/v1/models/synthetic@1/activate": {"role": "champion", "actor": "mo", "reason": "keep"},
        "/v1/models:rollback": {"actor": "mo", "reason": "undo"},
    }
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")
    async with anonymous:
        for method, template, scope in ROUTES:
            path = template.format(case=case.case_id)
            body = bodies.get(template)

            unauthenticated = await anonymous.request(method, path, json=body)
            assert unauthenticated.status_code == 401, (path, unauthenticated.text)
            assert unauthenticated.headers["content-type"] == "application/problem+json"
            assert unauthenticated.headers["www-authenticate"].startswith("Bearer")

            lacking = next(k for k in ClientKind if scope not in KIND_SCOPES[k])
            forbidden = await client_of(ACME, lacking.value).request(method, path, json=body)
            assert forbidden.status_code == 403, (path, lacking, forbidden.text)
            assert forbidden.headers["content-type"] == "application/problem+json"
            assert scope.value in forbidden.json()["detail"]

            holder = next(k for k in ClientKind if scope in KIND_SCOPES[k])
            allowed = await client_of(ACME, holder.value).request(method, path, json=body)
            assert allowed.status_code not in (401, 403), (path, holder, allowed.text)
    # Nothing the refused calls asked for happened.
    assert len(await published(app, "score.overridden")) == 1
    assert await roles(client_of(ACME)) == {"synthetic@1": "champion", "synthetic@2": "candidate"}
