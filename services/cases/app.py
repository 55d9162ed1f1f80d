"""Cases service: the system of record for debtors and cases."""

from __future__ import annotations

from fastapi import FastAPI

from services.cases.api import router
from services.cases.handlers import HANDLERS, TOPICS
from services.cases.settings import CasesSettings
from shared.runtime import build_service_app


def create_app(settings: CasesSettings | None = None) -> FastAPI:
    """The cases API with its outbox relay."""
    return build_service_app(
        name="cases",
        title="Qingshou cases",
        description="System of record for debtors and collection cases. Publishes `cases.events`.",
        settings=settings or CasesSettings(),
        router=router,
        topics=TOPICS,
        handlers=HANDLERS,
    )
