"""The whole system as separate processes: embedded broker + four services, per backend."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.stack import SERVICES, LocalStack, sqlite_urls
from tests.conftest import create_pg_database, drop_pg_database, require_postgres

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gmsc_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, trained as `make run` trains it (GMSC data cached under ./var)."""
    path = tmp_path_factory.mktemp("models") / "gmsc-scorecard-1.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "services.scoring",
            "setup",
            "--data-dir",
            str(ROOT / "var" / "data"),
        ],
        env={**os.environ, "SCORING_DEFAULT_MODEL_PATH": str(path)},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, gmsc_model: Path
) -> Iterator[LocalStack]:
    """A running system; SQLite files or four fresh PostgreSQL databases."""
    backend = str(request.param)
    workdir: Path = tmp_path_factory.mktemp(f"stack-{backend}")
    created: list[str] = []
    if backend == "postgres":
        require_postgres()
        urls = {}
        for name in SERVICES:
            db_name, url = create_pg_database(name)
            created.append(db_name)
            urls[name] = url
    else:
        urls = sqlite_urls(workdir / "db")
    running = LocalStack(
        workdir=workdir,
        database_urls=urls,
        extra_env={
            "{P}LOG_LEVEL": "INFO",
            "{P}RELAY_PROBE_INTERVAL_S": "0.5",
            "SCORING_DEFAULT_MODEL_PATH": str(gmsc_model),
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        for db_name in created:
            drop_pg_database(db_name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `fault` tests (tests/e2e/test_faults.py, 10,000 cases each) run only when asked for
    by name (`pytest -m fault`, `make fault`): a later `-m` (as `make e2e` and `make unit` pass)
    replaces the `-m "not fault"` of the default options, so drop them here too."""
    if "fault" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("fault") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
