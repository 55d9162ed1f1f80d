"""Event contracts shared by producers and consumers (the only coupling between services)."""

from shared.contracts.envelope import Envelope, canonical_json, utc_now
from shared.contracts.events import (
    PAYLOADS,
    CaseOpened,
    CaseScored,
    ContactPlanned,
    EventPayload,
    Money,
    RiskTier,
    TimeZoneName,
    UnknownEventError,
    build_envelope,
    parse_payload,
    payload_model,
)

__all__ = [
    "PAYLOADS",
    "CaseOpened",
    "CaseScored",
    "ContactPlanned",
    "Envelope",
    "EventPayload",
    "Money",
    "RiskTier",
    "TimeZoneName",
    "UnknownEventError",
    "build_envelope",
    "canonical_json",
    "parse_payload",
    "payload_model",
    "utc_now",
]
