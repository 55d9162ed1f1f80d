"""Contact service: the one lawful gateway to dialers and message gateways."""

from __future__ import annotations

from fastapi import FastAPI

from services.contact.api import router
from services.contact.handlers import TOPICS, make_handlers
from services.contact.settings import ContactSettings
from shared.contracts import utc_now
from shared.runtime import build_service_app


def create_app(settings: ContactSettings | None = None) -> FastAPI:
    """The contact API with its consumer of case and score events and its outbox relay."""
    settings = settings or ContactSettings()
    app = build_service_app(
        name="contact",
        title="Qingshou contact",
        description=(
            "Plans contact attempts only inside lawful windows (22:00-08:00 local is never "
            "planned). Publishes `contact.events` for dialers."
        ),
        settings=settings,
        router=router,
        topics=TOPICS,
        handlers=make_handlers(tuple(settings.rule_packs)),
    )
    app.state.clock = utc_now  # replaceable in tests and simulations
    # Registered now so that both outcomes are exposed (at zero) before the first decision.
    app.state.runtime.metrics.contact_decisions()
    return app
