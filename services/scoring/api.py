"""Scoring HTTP routes: scores, overrides, batch rescoring, the model registry, monitoring."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from pydantic import ValidationError

from services.scoring import service
from services.scoring.schemas import (
    ActivateIn,
    BatchIn,
    BatchOut,
    CaseScores,
    ModelDetail,
    ModelSummary,
    Monitoring,
    OverrideIn,
    OverrideOut,
    RollbackIn,
)
from services.scoring.scorecard import Scorecard
from shared.auth import Principal, Scope, requires
from shared.contracts import utc_now
from shared.http import AUTH_RESPONSES, DomainError, problem_responses
from shared.logging import correlation_id
from shared.runtime import unit_of_work

router = APIRouter(prefix="/v1", tags=["scores"], responses=AUTH_RESPONSES)
models_router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_RESPONSES)

ScoresReader = Annotated[Principal, requires(Scope.SCORES_READ)]
ScoresWriter = Annotated[Principal, requires(Scope.SCORES_WRITE)]
ModelsAdmin = Annotated[Principal, requires(Scope.MODELS_ADMIN)]


class InvalidModel(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/invalid-model"


def _ctx(request: Request) -> service.ScoringContext:
    ctx: service.ScoringContext = request.app.state.scoring
    return ctx


def _correlation() -> str:
    return correlation_id.get() or str(uuid.uuid4())


@router.get(
    "/scores/{case_id}",
    response_model=CaseScores,
    summary="Latest score of a case, its history and human overrides",
    responses=problem_responses(404),
)
async def get_scores(case_id: uuid.UUID, request: Request, principal: ScoresReader) -> CaseScores:
    async with unit_of_work(request) as session:
        return await service.case_scores(session, tenant=principal.tenant, case_id=case_id)


@router.post(
    "/scores/{case_id}/overrides",
    status_code=201,
    response_model=OverrideOut,
    summary="Override the latest score's tier or priority (human review)",
    responses=problem_responses(400, 404, 413),
)
async def override(
    case_id: uuid.UUID, body: OverrideIn, request: Request, principal: ScoresWriter
) -> OverrideOut:
    async with unit_of_work(request) as session:
        return await service.override_score(
            session,
            tenant=principal.tenant,
            case_id=case_id,
            body=body,
            correlation_id=_correlation(),
            now=utc_now(),
        )


@router.post(
    "/scores:batch",
    response_model=BatchOut,
    summary="Rescore cases now (all open cases when no ids are given)",
    responses=problem_responses(400, 413),
)
async def batch(body: BatchIn, request: Request, principal: ScoresWriter) -> BatchOut:
    async with unit_of_work(request) as session:
        return await service.rescore(
            session,
            tenant=principal.tenant,
            case_ids=body.case_ids,
            correlation_id=_correlation(),
            now=utc_now(),
            ctx=_ctx(request),
        )


@models_router.get("", response_model=list[ModelSummary], summary="Registered models")
async def list_models(request: Request, principal: ScoresReader) -> list[ModelSummary]:
    async with unit_of_work(request) as session:
        return await service.list_models(session, tenant=principal.tenant)


@models_router.post(
    "",
    status_code=201,
    response_model=ModelSummary,
    summary="Register a scorecard version (JSON document) as a candidate",
    responses=problem_responses(400, 409, 413),
)
async def register(
    request: Request,
    principal: ModelsAdmin,
    document: Annotated[dict[str, object], Body(description="A qingshou.scorecard/1 document.")],
) -> ModelSummary:
    try:
        model = Scorecard.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidModel(f"not a valid scorecard: {where}: {first['msg']}") from None
    async with unit_of_work(request) as session:
        return await service.register_model(
            session, tenant=principal.tenant, model=model, now=utc_now()
        )


@models_router.get(
    "/{key}",
    response_model=ModelDetail,
    summary="A model with its card",
    responses=problem_responses(404),
)
async def get_model(key: str, request: Request, principal: ScoresReader) -> ModelDetail:
    async with unit_of_work(request) as session:
        return await service.get_model(session, tenant=principal.tenant, key=key)


@models_router.post(
    "/{key}/activate",
    response_model=ModelSummary,
    summary="Make a model champion or challenger (with a traffic share), or retire it",
    responses=problem_responses(400, 404, 413),
)
async def activate(
    key: str, body: ActivateIn, request: Request, principal: ModelsAdmin
) -> ModelSummary:
    async with unit_of_work(request) as session:
        result = await service.activate_model(
            session,
            tenant=principal.tenant,
            key=key,
            body=body,
            correlation_id=_correlation(),
            now=utc_now(),
        )
    _ctx(request).forget()
    return result


@models_router.post(
    ":rollback",
    response_model=ModelSummary,
    summary="Reinstate the previous champion",
    responses=problem_responses(400, 409, 413),
)
async def rollback(body: RollbackIn, request: Request, principal: ModelsAdmin) -> ModelSummary:
    async with unit_of_work(request) as session:
        result = await service.rollback_champion(
            session,
            tenant=principal.tenant,
            actor=body.actor,
            reason=body.reason,
            correlation_id=_correlation(),
            now=utc_now(),
        )
    _ctx(request).forget()
    return result


@models_router.get(
    "/{key}/monitoring",
    response_model=Monitoring,
    summary="Population stability (PSI) of scores and features vs training",
    responses=problem_responses(404),
)
async def monitoring(
    key: str,
    request: Request,
    principal: ScoresReader,
    last: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Monitoring:
    async with unit_of_work(request) as session:
        return await service.monitoring(session, tenant=principal.tenant, key=key, last=last)
