"""Compliance service: the tamper-evident evidence log of everything that happened."""

from __future__ import annotations

from fastapi import FastAPI

from services.compliance.api import router
from services.compliance.handlers import TOPICS, make_handlers
from services.compliance.settings import ComplianceSettings
from shared.runtime import build_service_app


def create_app(settings: ComplianceSettings | None = None) -> FastAPI:
    """The compliance API with its consumer of every topic."""
    settings = settings or ComplianceSettings()
    return build_service_app(
        name="compliance",
        title="Qingshou compliance",
        description="Append-only, hash-chained evidence log of every event; chain verification.",
        settings=settings,
        router=router,
        topics=TOPICS,
        handlers=make_handlers(pii_key=settings.pii_key.get_secret_value().encode()),
    )
