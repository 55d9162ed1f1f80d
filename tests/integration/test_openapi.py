"""Every service publishes a complete OpenAPI document: each operation documents its success
body and its problem responses, and the error bodies are problem+json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def apps(tmp: Path) -> dict[str, Callable[[], FastAPI]]:
    def url(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp / name}.db"

    return {
        "cases": lambda: cases_app(CasesSettings(database_url=url("c"), enable_bus=False)),
        "scoring": lambda: scoring_app(ScoringSettings(database_url=url("s"), enable_bus=False)),
        "contact": lambda: contact_app(ContactSettings(database_url=url("k"), enable_bus=False)),
        "compliance": lambda: compliance_app(
            ComplianceSettings(database_url=url("a"), enable_bus=False)
        ),
    }


@pytest.mark.parametrize("service", ["cases", "scoring", "contact", "compliance"])
def test_openapi_documents_every_operation(service: str, tmp_path: Path) -> None:
    document: dict[str, Any] = apps(tmp_path)[service]().openapi()
    assert document["info"]["title"].endswith(service)
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    assert {"/healthz", "/readyz"} <= set(document["paths"])
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), f"{where} has no summary"
        success = [code for code in op["responses"] if code.startswith("2")]
        assert success, f"{where} documents no success response"
        if "{" in path or op.get("requestBody") or op.get("parameters"):
            assert "422" in op["responses"], f"{where} does not document its 422"
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and path not in ("/readyz",):
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (where, code)
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"], "422 is a Problem"


def test_case_intake_is_fully_described(tmp_path: Path) -> None:
    document = apps(tmp_path)["cases"]().openapi()
    post = document["paths"]["/v1/cases"]["post"]
    assert {"201", "409", "413", "422"} <= set(post["responses"])
    headers = [p["name"] for p in post.get("parameters", []) if p["in"] == "header"]
    assert "idempotency-key" in [h.lower() for h in headers]
    body_schema = document["components"]["schemas"]["CaseCreate"]
    assert body_schema.get("examples"), "CaseCreate carries an example for CRM integrators"


def test_every_request_example_in_the_cases_api_is_valid(tmp_path: Path) -> None:
    """Examples are documentation a CRM copies: each must pass its own model's validation."""
    from pydantic import BaseModel

    from services.cases import schemas

    document: dict[str, Any] = apps(tmp_path)["cases"]().openapi()
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for item in document["paths"].values()
        for op in item.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    checked = 0
    for name in sorted(bodies):
        model = getattr(schemas, name)
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        examples = model.model_json_schema().get("examples", [])
        assert examples, f"{name} has no example"
        for example in examples:
            model.model_validate(example)
            checked += 1
    assert checked >= len(bodies)
