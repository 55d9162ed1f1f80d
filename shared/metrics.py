"""Prometheus metrics of one service app, served at `GET /metrics`.

Each app keeps its own registry (never the process-wide default: tests build many apps in one
process). HTTP traffic is counted by a pure ASGI middleware; the outbox backlog, dead letters
and consumer lag are read when scraped; contact decisions are counted through the database
session that made them, and only once its transaction commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bus import EventConsumer
from shared.outbox import unpublished_count

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
#: The Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Route label of requests no route matches (their raw paths would be unbounded label values).
UNMATCHED = "unmatched"
# A scrape must answer even when the database or broker does not: readings that take longer
# are left out of that scrape.
SCRAPE_DB_TIMEOUT_S = 1.0
SCRAPE_BROKER_TIMEOUT_S = 0.5

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SESSION_KEY = "qingshou_metrics"
_PENDING_KEY = "qingshou_metrics_pending"


class ServiceMetrics:
    """The metrics of one service app, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qingshou_http_requests",
            "HTTP requests answered, by route template and status.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "qingshou_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self._decisions: Counter | None = None
        self._blocked: Counter | None = None

    def bind(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Let code holding one of this app's sessions record metrics through it (the service
        layer gets a session, not the app)."""
        sessions.configure(info={_SESSION_KEY: self})

    def observe_request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one answered HTTP request."""
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.duration.labels(self.service, method, route).observe(seconds)

    def contact_decisions(self) -> tuple[Counter, Counter]:
        """The contact decision counters (decisions by outcome, blocks by rule), registered on
        first use so that services that never decide do not expose them."""
        if self._decisions is None or self._blocked is None:
            self._decisions = Counter(
                "qingshou_contact_decisions",
                "Contact decisions made (over HTTP, when planning, at worklist release).",
                ["service", "outcome"],
                registry=self.registry,
            )
            self._blocked = Counter(
                "qingshou_contact_blocked",
                "Contact decisions blocked, by each rule that objected.",
                ["service", "rule_id"],
                registry=self.registry,
            )
            for outcome in ("allowed", "blocked"):
                self._decisions.labels(self.service, outcome)
        return self._decisions, self._blocked

    def count_decision(self, *, allowed: bool, rule_ids: Iterable[str]) -> None:
        """Count one contact decision and, if it blocked, each rule that objected (once)."""
        decisions, blocked = self.contact_decisions()
        decisions.labels(self.service, "allowed" if allowed else "blocked").inc()
        if not allowed:
            for rule_id in dict.fromkeys(rule_ids):
                blocked.labels(self.service, rule_id).inc()

    async def render(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        gate: asyncio.Lock | None,
        consumer: EventConsumer | None,
    ) -> bytes:
        """The text exposition: the registry plus the readings taken now. A reading that cannot
        be taken (database down, broker silent) is absent, never a failed scrape."""
        families: list[Metric] = []
        backlog = await _backlog(sessions, gate)
        if backlog is not None:
            gauge = GaugeMetricFamily(
                "qingshou_outbox_backlog",
                "Outbox rows not yet published (the service's database, shared by replicas).",
                labels=["service"],
            )
            gauge.add_metric([self.service], backlog)
            families.append(gauge)
        if consumer is not None:
            dlq = CounterMetricFamily(
                "qingshou_dlq_messages",
                "Messages this process dead-lettered (committed), by dead-letter topic.",
                labels=["service", "topic"],
            )
            for topic, count in sorted(consumer.dead_letters.items()):
                dlq.add_metric([self.service, topic], count)
            families.append(dlq)
            lags = await consumer.lag(timeout_s=SCRAPE_BROKER_TIMEOUT_S)
            if lags:
                lag = GaugeMetricFamily(
                    "qingshou_consumer_lag",
                    "Records between the consumer's position and the broker's high-water mark.",
                    labels=["service", "topic", "partition"],
                )
                for tp, behind in sorted(lags.items()):
                    lag.add_metric([self.service, tp.topic, str(tp.partition)], behind)
                families.append(lag)
        return generate_latest(_Scrape(self.registry, families))


class _Scrape:
    """One scrape: the registry's metrics and the readings taken for it (nothing is shared
    between concurrent scrapes)."""

    def __init__(self, registry: CollectorRegistry, readings: Sequence[Metric]) -> None:
        self.registry = registry
        self.readings = readings

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.readings


async def _backlog(
    sessions: async_sessionmaker[AsyncSession], gate: asyncio.Lock | None
) -> int | None:
    try:
        async with asyncio.timeout(SCRAPE_DB_TIMEOUT_S):
            # On SQLite every transaction takes the write lock: queue with the requests rather
            # than block a driver thread that a timeout cannot stop.
            async with gate or contextlib.nullcontext(), sessions() as session:
                return await unpublished_count(session)
    except Exception as exc:
        # Readiness already reports the database; an absent series is what alerts watch for.
        log.debug("metrics: outbox backlog unavailable: %s", exc)
        return None


def add_metrics_route(app: FastAPI, *, render: Callable[[], Awaitable[bytes]]) -> None:
    """`GET /metrics` in the Prometheus text format (no credentials, not in the OpenAPI)."""

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        return Response(await render(), media_type=CONTENT_TYPE)


class MetricsMiddleware:
    """Counts and times each HTTP request by its route template (pure ASGI; added last, so it
    sees every response, the middlewares' own refusals included)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it responds

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            self._observe(scope, status, started)
            raise
        self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        method = str(scope.get("method", "")).upper()
        self.metrics.observe_request(
            method=method if method in _METHODS else "other",
            route=self._route(scope),
            status=status,
            seconds=time.perf_counter() - started,
        )

    def _route(self, scope: Scope) -> str:
        template = getattr(scope.get("route"), "path_format", None)
        if template is None:
            # Answered before routing (e.g. a 413 on the declared length): match it ourselves,
            # on a copy, as the router would have (a full match first, else a method mismatch).
            partial = None
            for route in _leaf_routes(self.router.routes):
                match, _child = route.matches(dict(scope))
                if match is Match.FULL:
                    template = getattr(route, "path_format", None)
                    break
                if match is Match.PARTIAL and partial is None:
                    partial = getattr(route, "path_format", None)
            template = template or partial
        return template if isinstance(template, str) else UNMATCHED


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    # Recent FastAPI keeps an included router whole (`original_router`) instead of copying its
    # routes into the app. Its routes carry their full paths here: no service includes a
    # router with a prefix of its own.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if isinstance(inner, Router):
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def record_contact_decision(
    session: AsyncSession, *, allowed: bool, rule_ids: Sequence[str]
) -> None:
    """Count a contact decision once `session`'s transaction commits (a retried batch or a
    failed request counts nothing). No-op for sessions not made by a service app."""
    metrics = session.info.get(_SESSION_KEY)
    if not isinstance(metrics, ServiceMetrics):
        return
    ids = tuple(rule_ids)
    _on_commit(session.sync_session, lambda: metrics.count_decision(allowed=allowed, rule_ids=ids))


def _on_commit(session: Session, action: Callable[[], None]) -> None:
    # Tagged with the innermost transaction, so a rolled-back SAVEPOINT (a message isolated
    # from its batch) drops only what was counted inside it.
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        _apply([action])
        return
    session.info.setdefault(_PENDING_KEY, []).append((transaction, action))


def _apply(actions: Iterable[Callable[[], None]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # a metric must never fail the work it measures
            log.exception("metrics: recording failed")


def _inside(transaction: SessionTransaction, outer: SessionTransaction) -> bool:
    current: SessionTransaction | None = transaction
    while current is not None:
        if current is outer:
            return True
        current = current.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING_KEY)
    if pending:
        session.info[_PENDING_KEY] = [
            (tx, action) for tx, action in pending if not _inside(tx, previous_transaction)
        ]


@event.listens_for(Session, "after_commit")
def _apply_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released: the enclosing transaction may still roll back
    _apply(action for _tx, action in session.info.pop(_PENDING_KEY, ()))


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # A session closed without commit or rollback ends its transaction with neither event.
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)
