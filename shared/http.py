"""HTTP plumbing shared by the four APIs: problem details, body limits, correlation, health."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import correlation_id

PROBLEM_JSON = "application/problem+json"


class InvalidParam(BaseModel):
    """One input problem: where it is and what is wrong."""

    name: str = Field(description="Dotted location of the field, e.g. body.debtor.time_zone.")
    reason: str
    type: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = Field(default=None, alias="invalid-params")
    correlation_id: str | None = None

    model_config = {"populate_by_name": True}


class DomainError(Exception):
    """A rule said no; carries the HTTP status and a stable problem type."""

    status: int = 422
    problem_type: str = "about:blank"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    status = 404
    problem_type = "https://qingshou.dev/problems/not-found"


class Invalid(DomainError):
    """A request well-formed but not acceptable (a date in the future, an empty period)."""

    status = 422
    problem_type = "https://qingshou.dev/problems/validation"


class Conflict(DomainError):
    status = 409
    problem_type = "https://qingshou.dev/problems/conflict"


def problem_response(
    *,
    status: int,
    detail: str | None = None,
    problem_type: str = "about:blank",
    title: str | None = None,
    invalid_params: Sequence[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=problem_type,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        invalid_params=list(invalid_params) if invalid_params is not None else None,
        correlation_id=correlation_id.get(),
    )
    return JSONResponse(
        body.model_dump(by_alias=True, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "description": HTTPStatus(status).phrase,
    }
    for status in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}

#: Every route behind a credential can answer these (router-level `responses=`).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: PROBLEM_RESPONSES[code] for code in (401, 403)
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the given problem statuses plus 422 and 503, which
    every route can return (validation, database unavailable)."""
    return {code: PROBLEM_RESPONSES[code] for code in sorted({*statuses, 422, 503})}


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as problem+json; unexpected ones never leak internals."""

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        params = [
            InvalidParam(
                name=".".join(str(p) for p in err.get("loc", ())),
                reason=str(err.get("msg", "invalid")),
                type=str(err.get("type")) if err.get("type") else None,
            )
            for err in exc.errors()
        ]
        return problem_response(
            status=422,
            title="Request is not valid",
            detail=f"{len(params)} field(s) failed validation",
            problem_type="https://qingshou.dev/problems/validation",
            invalid_params=params,
            instance=request.url.path,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            status=exc.status_code,
            detail=str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
            instance=request.url.path,
        )

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem_response(
            status=exc.status,
            detail=exc.detail,
            problem_type=exc.problem_type,
            headers=exc.headers,
            instance=request.url.path,
        )

    async def on_db_down(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            status=503,
            detail="the service's database is unavailable; retry later",
            headers={"Retry-After": "2"},
            instance=request.url.path,
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(sa_exc.OperationalError, on_db_down)
    app.add_exception_handler(sa_exc.InterfaceError, on_db_down)
    app.add_exception_handler(ConnectionRefusedError, on_db_down)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413 before the route reads them (pure ASGI).

    `per_path` gives larger limits to path prefixes that take uploads (e.g. bulk imports)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}

    def _limit(self, path: str) -> int:
        for prefix, limit in self.per_path.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope.get("path", ""))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._too_large(scope, receive, send, max_bytes)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send, max_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            status=413,
            detail=f"request body exceeds {limit} bytes",
            problem_type="https://qingshou.dev/problems/body-too-large",
        )
        await response(scope, receive, send)


class _BodyTooLarge(BaseException):
    # BaseException on purpose: FastAPI turns any Exception raised while reading the body into
    # a 400 "error parsing the body"; this one must reach the middleware to become a 413.
    pass


class CorrelationMiddleware:
    """Takes X-Correlation-ID (or makes one), exposes it to logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers", [])).get(b"x-correlation-id", b"").decode("latin-1")
        cid = raw[:200] if raw.strip() else str(uuid.uuid4())
        token = correlation_id.set(cid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-correlation-id", cid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


class Health(BaseModel):
    """Liveness/readiness report."""

    status: str = Field(examples=["ok"])
    checks: dict[str, bool] = Field(default_factory=dict)


def add_health_routes(app: FastAPI, *, readiness: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    """`/healthz` (process alive) and `/readyz` (database reachable and consumer assigned)."""

    @app.get("/healthz", tags=["ops"], response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Health,
        summary="Readiness: database reachable and consumer assigned",
        responses={503: {"model": Health, "description": "Not ready"}},
    )
    async def readyz() -> Any:
        checks = await readiness()
        body = Health(status="ok" if all(checks.values()) else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if all(checks.values()) else 503)
