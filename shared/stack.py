"""The whole system on one machine: embedded broker + four service processes.

Used by `make run` (via `shared.devrun`), the end-to-end tests and the benchmarks, so all three
exercise the same real processes over TCP.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.broker import EmbeddedBroker, free_port, port_is_free, stop_process

SERVICES: tuple[str, ...] = ("cases", "scoring", "contact", "compliance")
DEFAULT_PORTS: dict[str, int] = {
    "cases": 8001,
    "scoring": 8002,
    "contact": 8003,
    "compliance": 8004,
}
ENV_PREFIX: dict[str, str] = {name: f"{name.upper()}_" for name in SERVICES}
ROOT = Path(__file__).resolve().parent.parent


def sqlite_urls(directory: Path) -> dict[str, str]:
    """One SQLite file per service under `directory`."""
    return {
        name: f"sqlite+aiosqlite:///{(directory / f'{name}.db').resolve()}" for name in SERVICES
    }


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _distinct_free_port(taken: set[int]) -> int:
    """A free port that is none of `taken` (two quick `free_port` calls can return the same)."""
    while True:
        port = free_port()
        if port not in taken:
            return port


@dataclass
class LocalStack:
    """Starts and stops the broker and the services; each service gets its own database URL."""

    workdir: Path
    database_urls: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    broker_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker = field(init=False)
    services: dict[str, ServiceProcess] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set(self.ports.values())
        broker_port = self.broker_port or _distinct_free_port(taken)
        self.broker = EmbeddedBroker(port=broker_port, log_path=self.workdir / "broker.log")
        taken.add(self.broker.port)
        for name in SERVICES:
            port = self.ports.get(name) or _distinct_free_port(taken)
            taken.add(port)
            self.services[name] = ServiceProcess(name, port, self.workdir / f"{name}.log")

    def env_for(self, name: str) -> dict[str, str]:
        """Environment of one service process."""
        prefix = ENV_PREFIX[name]
        env = dict(os.environ)
        env.update(
            {
                f"{prefix}DATABASE_URL": self.database_urls[name],
                f"{prefix}KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
                f"{prefix}PORT": str(self.services[name].port),
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update({k.replace("{P}", prefix): v for k, v in self.extra_env.items()})
        return env

    def start(self, *, timeout_s: float = 90.0) -> None:
        """Broker, topics, migrations, then the four services; returns when all are ready."""
        self.start_broker()
        for name in SERVICES:
            self.migrate(name)
        for name in SERVICES:
            self.start_service(name)
        self.wait_ready(timeout_s=timeout_s)

    def start_broker(self) -> None:
        """Start (or restart, empty) the broker on its fixed port and create the topics."""
        self.broker.start()
        asyncio.run(self.broker.create_topics())

    async def start_broker_async(self) -> None:
        """`start_broker` for callers already inside an event loop."""
        self.broker.start()
        await self.broker.create_topics()

    def migrate(self, name: str) -> None:
        subprocess.run(  # noqa: S603 - our own module
            [sys.executable, "-m", f"services.{name}", "migrate"],
            env=self.env_for(name),
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start_service(self, name: str) -> None:
        svc = self.services[name]
        if not port_is_free(svc.port):
            if name in self.ports:
                raise RuntimeError(f"port {svc.port} for {name} is taken")
            # A port picked at random earlier may have been taken since: pick another.
            svc.port = _distinct_free_port({s.port for s in self.services.values()})
        log = open(svc.log_path, "ab")  # noqa: SIM115 - handed to the child process
        svc.process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", f"services.{name}", "serve"],
            env=self.env_for(name),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        svc = self.services[name]
        stop_process(svc.process, kill=kill)
        svc.process = None

    def wait_ready(self, *, timeout_s: float = 90.0, names: tuple[str, ...] = SERVICES) -> None:
        """Poll /readyz until every named service answers 200."""
        deadline = time.monotonic() + timeout_s
        pending = set(names)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in sorted(pending):
                    svc = self.services[name]
                    if svc.process is not None and svc.process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {svc.process.returncode}; see {svc.log_path}"
                        )
                    try:
                        if client.get(f"{svc.base_url}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout_s}s: {sorted(pending)}")
                if pending:
                    time.sleep(0.2)

    def stop(self) -> None:
        """Stop the services (SIGTERM, graceful) and then the broker."""
        for name in SERVICES:
            self.stop_service(name)
        self.broker.stop()

    def url(self, name: str) -> str:
        return self.services[name].base_url
