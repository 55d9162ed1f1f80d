"""Topic names. `<service>.events` per producer, plus inbound outcomes and a DLQ for each."""

from __future__ import annotations

CASES_EVENTS = "cases.events"
SCORING_EVENTS = "scoring.events"
CONTACT_EVENTS = "contact.events"
CONTACT_OUTCOMES = "contact.outcomes"
COMPLIANCE_EVENTS = "compliance.events"
#: Administrative changes made outside a service's API (API keys); the compliance log keeps them.
ADMIN_EVENTS = "admin.events"

MAIN_TOPICS: tuple[str, ...] = (
    CASES_EVENTS,
    SCORING_EVENTS,
    CONTACT_EVENTS,
    CONTACT_OUTCOMES,
    COMPLIANCE_EVENTS,
    ADMIN_EVENTS,
)


def dlq_for(topic: str) -> str:
    """Dead-letter topic of `topic`."""
    return f"{topic}.dlq"


ALL_TOPICS: tuple[str, ...] = MAIN_TOPICS + tuple(dlq_for(t) for t in MAIN_TOPICS)
