"""Cases service: the system of record for debtors, cases, holds, assignment, promises,
plans and payments."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from fastapi import FastAPI

from services.cases import domain, importer, service
from services.cases.api import router
from services.cases.handlers import TOPICS, make_handlers
from services.cases.settings import CasesSettings
from shared import crypto
from shared.contracts import utc_now
from shared.contracts.envelope import DEFAULT_TENANT
from shared.runtime import ServiceRuntime, build_service_app

log = logging.getLogger(__name__)


def policy_from(settings: CasesSettings) -> service.Policy:
    """The tenant's case rules from settings."""
    return service.Policy(
        buckets=domain.parse_buckets(settings.dpd_buckets),
        ptp_grace_days=settings.ptp_grace_days,
        ptp_max_days_ahead=settings.ptp_max_days_ahead,
        financial_retention_days=settings.financial_retention_days,
    )


def create_app(settings: CasesSettings | None = None) -> FastAPI:
    """The cases API with its consumer of scores and outcomes, its daily run and its relay."""
    settings = settings or CasesSettings()
    # Personal fields are encrypted with this keyring by the column types (shared/crypto.py).
    crypto.configure(settings.field_cipher())
    policy = policy_from(settings)
    app: FastAPI

    async def run_daily(runtime: ServiceRuntime) -> None:
        """Promises, hold expiry and the DPD roll of every tenant, in short transactions, every
        interval."""
        while True:
            try:
                while True:
                    async with runtime.sessions() as session, session.begin():
                        done = await service.daily_run(
                            session,
                            ctx=service.Context(
                                now=app.state.clock(),
                                correlation_id=f"daily-run-{uuid.uuid4()}",
                                # Each record is changed on behalf of its own tenant.
                                tenant=DEFAULT_TENANT,
                                policy=policy,
                            ),
                            every_tenant=True,
                        )
                    if not (
                        done.promises_kept
                        + done.promises_broken
                        + done.holds_expired
                        + done.cases_rolled
                    ):
                        break
                    log.info("daily run slice", extra=done.model_dump())
            except Exception:
                log.exception("daily run failed; retrying next interval")
            await asyncio.sleep(settings.daily_run_interval_s)

    async def fail_interrupted_imports(runtime: ServiceRuntime) -> None:
        async with runtime.sessions() as session, session.begin():
            await importer.fail_interrupted(
                session, now=utc_now(), folder=Path(settings.import_dir)
            )

    app = build_service_app(
        name="cases",
        title="Qingshou cases",
        description=(
            "System of record for debtors and collection cases: holds, assignment and queues, "
            "promises, plans and settlements, payments, timeline and bulk import. "
            "Publishes `cases.events`; consumes `scoring.events` and `contact.events`."
        ),
        settings=settings,
        router=router,
        topics=TOPICS,
        handlers=make_handlers(policy),
        startup=[fail_interrupted_imports],
        background=[run_daily],
        upload_limits={"/v1/imports": settings.max_import_bytes},
    )
    app.state.clock = utc_now  # replaceable in tests and simulations
    app.state.policy = policy
    app.state.import_tasks = set()
    return app
