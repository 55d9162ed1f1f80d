"""Schemathesis against every service's OpenAPI: every operation is sent generated requests
(valid ones and, as negative cases, invalid ones) with the all-scopes credential, and every
answer must be no 5xx, a documented status with a documented content type, and a body that
matches the documented schema.

`make test` runs a few examples per operation; `make fuzz` (QS_FUZZ_EXAMPLES=200) many more.
Generation is derandomized, so a run is reproducible; a failure names the operation and the
request to replay (as curl)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.cases.app import create_app as cases_app
from services.cases.settings import CasesSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import ComplianceSettings
from services.contact.app import create_app as contact_app
from services.contact.settings import ContactSettings
from services.scoring.app import create_app as scoring_app
from services.scoring.settings import ScoringSettings
from tests.auth_support import headers
from tests.helpers import migrate_service

#: Examples per operation and generation mode (positive, negative).
EXAMPLES = int(os.environ.get("QS_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

FACTORIES: dict[str, Callable[[str, Path], FastAPI]] = {
    "cases": lambda url, tmp: cases_app(
        CasesSettings(
            database_url=url,
            enable_bus=False,
            enable_jobs=False,
            import_dir=str(tmp / "imports"),
        )
    ),
    # No default model file: the registry starts empty (the registry routes are fuzzed as such).
    "scoring": lambda url, tmp: scoring_app(
        ScoringSettings(
            database_url=url, enable_bus=False, default_model_path=str(tmp / "no-model.json")
        )
    ),
    "contact": lambda url, _: contact_app(ContactSettings(database_url=url, enable_bus=False)),
    "compliance": lambda url, _: compliance_app(
        ComplianceSettings(database_url=url, enable_bus=False)
    ),
}


@pytest.fixture(params=sorted(FACTORIES))
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FastAPI]:
    """A service on its own migrated SQLite database; schemathesis starts its lifespan."""
    name = str(request.param)
    url = migrate_service(name, f"sqlite+aiosqlite:///{tmp_path / name}.db")
    application = FACTORIES[name](url, tmp_path)
    yield application
    shutdown_lifespans()


def run_operation(case_strategy: Any, auth: dict[str, str]) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=case_strategy)
    def check(case: Case[Any]) -> None:
        case.call_and_validate(headers=auth, checks=CHECKS)

    check()


def brief(exc: BaseException) -> str:
    """Schemathesis' report, with its (possibly huge) reproduction requests cut short."""
    lines = [line[:300] for line in str(exc).splitlines() if line.strip()]
    return "\n".join(lines[:40])


def test_every_operation_answers_as_documented(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = headers()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        # A part of the schema schemathesis cannot read is a finding too (not skipped).
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, headers=auth)
            try:
                run_operation(strategy, auth)
            except hypothesis.errors.Unsatisfiable:
                # An operation without parameters or body has nothing to make invalid.
                if mode is GenerationMode.POSITIVE:
                    raise
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises FailureGroup
                failures.append(f"{operation.label} [{mode.value}]: {brief(exc)}")
    assert operations >= 5
    assert not failures, "\n\n".join(failures)
