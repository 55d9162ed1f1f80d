"""Scoring service: risk tier and priority for every case."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring.api import router
from services.scoring.handlers import HANDLERS, TOPICS
from services.scoring.settings import ScoringSettings
from shared.runtime import build_service_app


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    """The scoring API with its consumer of `cases.events` and its outbox relay."""
    return build_service_app(
        name="scoring",
        title="Qingshou scoring",
        description="Scores cases (priority, risk tier, reason codes). Publishes `scoring.events`.",
        settings=settings or ScoringSettings(),
        router=router,
        topics=TOPICS,
        handlers=HANDLERS,
    )
