"""Cases Kafka handlers. The foundation consumes nothing yet (scores and outcomes come next)."""

from __future__ import annotations

from shared.bus import Handler

TOPICS: tuple[str, ...] = ()
HANDLERS: dict[str, Handler] = {}
