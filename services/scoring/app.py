"""Scoring service: scorecards with reason codes, tiers, priority and treatment for every case."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from fastapi import APIRouter, FastAPI

from services.scoring import service
from services.scoring.api import models_router, router
from services.scoring.handlers import TOPICS, make_handlers
from services.scoring.settings import ScoringSettings
from shared.contracts import utc_now
from shared.runtime import ServiceRuntime, build_service_app

log = logging.getLogger(__name__)


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    """The scoring API with its consumer of `cases.events`, outbox relay and rescoring job."""
    settings = settings or ScoringSettings()
    ctx = service.ScoringContext(cutoffs=settings.tier_cutoffs, strategy=tuple(settings.strategy))

    async def register_default_model(runtime: ServiceRuntime) -> None:
        document = await asyncio.to_thread(_read_if_present, Path(settings.default_model_path))
        async with runtime.sessions() as session, session.begin():
            key = await service.ensure_default_model(session, document=document, now=utc_now())
        if key:
            log.info("registered %s as champion", key)

    async def weekly_rescoring(runtime: ServiceRuntime) -> None:
        while True:
            await asyncio.sleep(settings.rescore_interval_hours * 3600)
            run = str(uuid.uuid4())
            async with runtime.sessions() as session:
                tenants = await service.tenants_with_open_cases(session)
            for tenant in tenants:
                await rescore_tenant(runtime, tenant=tenant, run=run)

    async def rescore_tenant(runtime: ServiceRuntime, *, tenant: str, run: str) -> None:
        after = None
        while True:
            async with runtime.sessions() as session, session.begin():
                ids = await service.open_case_ids(session, tenant=tenant, after=after, limit=500)
                if not ids:
                    return
                await service.rescore(
                    session,
                    tenant=tenant,
                    case_ids=ids,
                    correlation_id=run,
                    now=utc_now(),
                    ctx=ctx,
                )
            after = ids[-1]

    api = APIRouter()
    api.include_router(router)
    api.include_router(models_router)
    app = build_service_app(
        name="scoring",
        title="Qingshou scoring",
        description=(
            "Scorecards (WoE logistic regression, points, reason codes), risk tier, priority, "
            "early warning and recommended treatment. Publishes `scoring.events`."
        ),
        settings=settings,
        router=api,
        topics=TOPICS,
        handlers=make_handlers(ctx),
        startup=[register_default_model],
        background=[weekly_rescoring],
    )
    app.state.scoring = ctx
    return app


def _read_if_present(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None
