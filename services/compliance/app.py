"""Compliance service: the tamper-evident evidence log of everything that happened."""

from __future__ import annotations

import asyncio
import logging
import uuid

from fastapi import FastAPI

from services.compliance import service
from services.compliance.api import router
from services.compliance.handlers import TOPICS, make_handlers
from services.compliance.settings import ComplianceSettings
from shared.contracts import utc_now
from shared.runtime import ServiceRuntime, build_service_app

log = logging.getLogger(__name__)


def create_app(settings: ComplianceSettings | None = None) -> FastAPI:
    """The compliance API with its consumer of every topic."""
    settings = settings or ComplianceSettings()

    async def checkpoints(runtime: ServiceRuntime) -> None:
        while True:
            await asyncio.sleep(settings.checkpoint_interval_s)
            try:
                async with runtime.sessions() as session, session.begin():
                    await service.issue_checkpoint(
                        session,
                        seed_hex=settings.checkpoint_key.get_secret_value(),
                        now=utc_now(),
                        correlation_id=f"checkpoint-{uuid.uuid4()}",
                    )
            except Exception as exc:  # the next round tries again; the log itself is unharmed
                log.warning("checkpoint not issued: %s", exc)

    app = build_service_app(
        name="compliance",
        title="Qingshou compliance",
        description=(
            "Append-only, hash-chained evidence log of every event with Merkle proofs; an "
            "independent re-check of every contact; complaints, prohibited language, QA, "
            "reports and the regulator export."
        ),
        settings=settings,
        router=router,
        topics=TOPICS,
        handlers=make_handlers(
            pii_key=settings.pii_key.get_secret_value().encode(),
            recheck=service.RecheckConfig(
                default_packs=settings.default_packs, hold_on=settings.hold_on_severities
            ),
        ),
        background=[checkpoints],
    )
    app.state.clock = utc_now  # replaceable in tests and simulations
    return app
