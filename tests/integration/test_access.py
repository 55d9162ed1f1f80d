"""Every route of every service is behind a credential and a scope; only health and metrics
are open. Walks the live route tables, so a route added without `requires` fails here."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.cases.app import create_app as cases_app
from services.cases.settings import CasesSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import ComplianceSettings
from services.contact.app import create_app as contact_app
from services.contact.settings import ContactSettings
from services.scoring.app import create_app as scoring_app
from services.scoring.settings import ScoringSettings
from shared.auth import ClientKind, Scope
from shared.contracts.envelope import utc_now
from tests.auth_support import store
from tests.helpers import migrate_service

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}
FACTORIES: dict[str, Callable[[str], FastAPI]] = {
    "cases": lambda url: cases_app(CasesSettings(database_url=url, enable_bus=False)),
    "scoring": lambda url: scoring_app(ScoringSettings(database_url=url, enable_bus=False)),
    "contact": lambda url: contact_app(ContactSettings(database_url=url, enable_bus=False)),
    "compliance": lambda url: compliance_app(
        ComplianceSettings(database_url=url, enable_bus=False)
    ),
}


def concrete(path: str) -> str:
    """A path with its parameters filled (ids that exist nowhere)."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append("1" if part == "{seq}" else str(uuid.uuid4()))
        else:
            parts.append(part)
    return "/".join(parts)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=sorted(FACTORIES))
def service_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(service, URL of its migrated SQLite database); this tier is about HTTP, not storage."""
    name = str(request.param)
    return name, migrate_service(name, f"sqlite+aiosqlite:///{tmp_path / name}.db")


@pytest.fixture
async def service_app(service_db: tuple[str, str]) -> AsyncIterator[FastAPI]:
    name, url = service_db
    app = FACTORIES[name](url)
    yield app
    await app.state.runtime.engine.dispose()


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every documented operation behind a credential."""
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path not in OPEN_PATHS
        for method in item
    ]


def scopes_named(detail: str) -> list[Scope]:
    """The scopes a 403 says the credential lacks."""
    return [scope for scope in Scope if re.search(rf"\b{re.escape(scope.value)}\b", detail)]


async def test_every_route_refuses_a_missing_or_bad_credential_with_401(
    service_app: FastAPI,
) -> None:
    expired, _ = store.create(
        client="old",
        kind=ClientKind.ADMIN,
        tenant="acme",
        now=utc_now() - timedelta(days=2),
        expires_in=timedelta(days=1),
        scopes=list(Scope),
    )
    transport = httpx.ASGITransport(app=service_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        routes = operations(service_app)
        assert len(routes) >= 3
        for method, template in routes:
            path = concrete(template)
            for headers in ({}, bearer("qsk_000000000000_nope"), bearer("a.b.c"), bearer(expired)):
                response = await client.request(method, path, headers=headers, json={})
                where = f"{method} {template} with {sorted(headers)}"
                assert response.status_code == 401, (where, response.text)
                assert response.headers["content-type"] == "application/problem+json", where
                assert response.headers["www-authenticate"].startswith("Bearer"), where
                assert response.json()["status"] == 401


async def test_every_route_checks_its_scope(service_app: FastAPI) -> None:
    nothing, _ = store.create(
        client="no-scopes",
        kind=ClientKind.ADMIN,
        tenant="acme",
        now=utc_now(),
        expires_in=timedelta(hours=1),
        scopes=[],
    )
    transport = httpx.ASGITransport(app=service_app)
    checked = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, template in operations(service_app):
            where = f"{method} {template}"
            refused = await client.request(
                method, concrete(template), headers=bearer(nothing), json={}
            )
            # Authenticated but holding no scope: every route must say which scope it wants.
            assert refused.status_code == 403, (where, refused.text)
            scopes = scopes_named(refused.json()["detail"])
            assert scopes, (where, refused.text)
            exact, _ = store.create(
                client="exact",
                kind=ClientKind.ADMIN,
                tenant="acme",
                now=utc_now(),
                expires_in=timedelta(hours=1),
                scopes=scopes,
            )
            allowed = await client.request(
                method, concrete(template), headers=bearer(exact), json={}
            )
            assert allowed.status_code not in (401, 403, 500), (where, allowed.text)
            checked += 1
    assert checked >= 3


def test_openapi_names_the_credential_and_its_problems(service_app: FastAPI) -> None:
    document: dict[str, Any] = service_app.openapi()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            if path in OPEN_PATHS:
                assert "security" not in operation, where
                continue
            assert operation.get("security") == [{"bearer": []}], where
            assert {"401", "403"} <= set(operation["responses"]), where
