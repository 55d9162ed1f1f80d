"""What every service process does the same way: lifespan, bus tasks, readiness, CLI.

A service supplies its name, settings, API router, consumed topics and handlers; this module
wires them into a FastAPI app whose lifespan starts the outbox relay and the consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import Authenticator
from shared.bus import EventConsumer, Handler
from shared.db import create_engine, is_sqlite, session_factory, sqlite_lock_wait
from shared.http import (
    BodyLimitMiddleware,
    CorrelationMiddleware,
    DomainError,
    add_health_routes,
    install_problem_handlers,
)
from shared.logging import configure_logging
from shared.metrics import MetricsMiddleware, ServiceMetrics, add_metrics_route
from shared.migrate import upgrade
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass
class ServiceRuntime:
    """The live resources of one service process."""

    name: str
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: ServiceMetrics
    consumer: EventConsumer | None = None
    relay: OutboxRelay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: list[asyncio.Task[None]] = field(default_factory=list)
    startup: Sequence[Callable[[ServiceRuntime], Awaitable[None]]] = ()
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = ()
    # SQLite takes one writer at a time (BEGIN IMMEDIATE). Requests queue here, in order, instead
    # of polling the file lock from their threads with growing sleeps (which gave p99s of seconds).
    request_gate: asyncio.Lock | None = None

    async def start(self) -> None:
        """Run start-up hooks, then start the relay, consumer and background tasks."""
        for hook in self.startup:
            await hook(self)
        if self.settings.enable_jobs:
            self.jobs = [
                asyncio.create_task(job(self), name=f"{self.name}-{job.__name__}")
                for job in self.background
            ]
        if not self.settings.enable_bus:
            return
        self.relay = OutboxRelay(name=self.name, sessions=self.sessions, settings=self.settings)
        self.tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-relay"))
        if self.consumer is not None:
            self.tasks.append(
                asyncio.create_task(self.consumer.run(), name=f"{self.name}-consumer")
            )

    async def stop(self) -> None:
        """Cancel background jobs, let the relay and consumer finish what they hold (their
        offsets committed), then close the database."""
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        """Database reachable, and the consumer holds partitions (if the service consumes)."""
        checks: dict[str, bool] = {}
        try:
            async with self.sessions() as session:
                await session.execute(sa.text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        if self.settings.enable_bus and self.consumer is not None:
            checks["consumer_assigned"] = self.consumer.assigned
        return checks

    async def render_metrics(self) -> bytes:
        """The Prometheus exposition of this process, with readings taken now."""
        return await self.metrics.render(
            sessions=self.sessions, gate=self.request_gate, consumer=self.consumer
        )


def runtime_of(request: Request) -> ServiceRuntime:
    """The runtime behind a request."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


class DatabaseBusy(DomainError):
    """SQLite's one writer stayed taken for as long as a request may wait."""

    status = 503
    problem_type = "https://qingshou.dev/problems/database-busy"
    headers = {"Retry-After": "2"}


@asynccontextmanager
async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commits on success, rolls back on any exception.

    On SQLite a request waits at most `request_db_wait_s` for the write slot, the queue of
    this process's requests and then the file's lock together, and gets a 503 with
    Retry-After after that: a stuck writer or a lock held by another process (a backup)
    never keeps a client waiting on a connection for the 30 s busy timeout, nor for each
    one queued before it."""
    runtime = runtime_of(request)
    gate = runtime.request_gate
    if gate is None:
        async with runtime.sessions() as session, session.begin():
            yield session
        return
    wait_s = runtime.settings.request_db_wait_s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    try:
        async with asyncio.timeout(wait_s):
            await gate.acquire()
    except TimeoutError:
        raise DatabaseBusy(
            f"the service's database took no write for {wait_s:g} s; retry later"
        ) from None
    try:
        # Whole seconds left (rounded down): the wait is set on the connection only when it
        # changes, and requests queued under a second find the same value as the one before.
        left_ms = int(max(deadline - loop.time(), 0)) * 1000
        with sqlite_lock_wait(left_ms):
            async with runtime.sessions() as session, session.begin():
                yield session
    finally:
        gate.release()


def build_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    router: APIRouter,
    topics: Sequence[str] = (),
    handlers: Mapping[str, Handler] | None = None,
    version: str = "0.1.0",
    startup: Sequence[Callable[[ServiceRuntime], Awaitable[None]]] = (),
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = (),
    upload_limits: dict[str, int] | None = None,
) -> FastAPI:
    """A FastAPI app for one service, with its bus tasks (and the service's own start-up hooks
    and background jobs) in the lifespan."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    metrics = ServiceMetrics(name)
    metrics.bind(sessions)
    runtime = ServiceRuntime(
        name=name,
        settings=settings,
        engine=engine,
        sessions=sessions,
        metrics=metrics,
        startup=startup,
        background=background,
        request_gate=asyncio.Lock() if is_sqlite(settings.database_url) else None,
    )
    if topics and handlers:
        runtime.consumer = EventConsumer(
            group_id=name,
            topics=topics,
            handlers=handlers,
            sessions=sessions,
            settings=settings,
            write_gate=runtime.request_gate,
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.authenticator = Authenticator(settings.auth)
    install_problem_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, per_path=upload_limits
    )
    app.add_middleware(CorrelationMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics, router=app.router)
    app.include_router(router)
    add_health_routes(app, readiness=runtime.readiness)
    add_metrics_route(app, render=runtime.render_metrics)
    return app


def service_main(
    *,
    name: str,
    settings_factory: Callable[[], SettingsT],
    app_factory: Callable[[SettingsT], FastAPI],
    migrations_dir: Path,
    argv: Sequence[str] | None = None,
    commands: Mapping[str, Callable[[list[str]], int]] | None = None,
) -> int:
    """`python -m services.<name> migrate|serve|openapi`, plus the service's own `commands`
    (each gets the remaining arguments)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if commands and args_list and args_list[0] in commands:
        return commands[args_list[0]](args_list[1:])
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the service database to the latest revision")
    serve = sub.add_parser("serve", help="run the HTTP API, outbox relay and consumer")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("openapi", help="print the OpenAPI document")
    for extra in commands or {}:
        sub.add_parser(extra, help=f"see python -m services.{name} {extra} --help")
    args = parser.parse_args(args_list)
    settings = settings_factory()
    configure_logging(service=name, level=settings.log_level, json_lines=settings.log_json)
    if args.command == "migrate":
        upgrade(migrations_dir=migrations_dir, url=settings.database_url)
        log.info("database migrated", extra={"database": _safe_url(settings.database_url)})
        return 0
    if args.command == "openapi":
        import json

        print(json.dumps(app_factory(settings).openapi(), indent=2))
        return 0
    import uvicorn

    uvicorn.run(
        app_factory(settings),
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _safe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use python -m services.<name>")
