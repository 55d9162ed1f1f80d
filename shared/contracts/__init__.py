"""Event contracts shared by producers and consumers (the only coupling between services)."""

from shared.contracts.envelope import Envelope, canonical_json, utc_now
from shared.contracts.events import (
    PAYLOADS,
    CaseOpened,
    CaseScored,
    CollateralType,
    ContactPlanned,
    EventPayload,
    Money,
    Reason,
    RiskFeatures,
    RiskTier,
    ScoreOverridden,
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
    "CollateralType",
    "ContactPlanned",
    "Envelope",
    "EventPayload",
    "Money",
    "Reason",
    "RiskFeatures",
    "RiskTier",
    "ScoreOverridden",
    "TimeZoneName",
    "UnknownEventError",
    "build_envelope",
    "canonical_json",
    "parse_payload",
    "payload_model",
    "utc_now",
]
