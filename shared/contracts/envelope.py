"""The one envelope every Qingshou message travels in."""

from __future__ import annotations

import contextvars
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Tenants are short slugs; a deployment that serves one creditor never needs to name one.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DEFAULT_TENANT = "default"

#: Who caused the events being built: set for the duration of an authenticated request.
current_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_actor", default=None
)


def utc_now() -> datetime:
    """Current time as an aware UTC datetime (the only clock the contracts use)."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Metadata shared by every event; `payload` is validated against the type's contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Unique per event; consumers dedupe on it."
    )
    type: str = Field(
        min_length=1, max_length=100, pattern=r"^[a-z_]+\.[a-z_]+$", examples=["case.opened"]
    )
    version: int = Field(ge=1, description="Contract version of the payload.")
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    producer: str = Field(min_length=1, max_length=50, examples=["cases"])
    key: str = Field(
        min_length=1, max_length=200, description="Partition key, usually the case id."
    )
    correlation_id: str = Field(min_length=1, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    tenant: str = Field(
        default=DEFAULT_TENANT,
        pattern=TENANT_PATTERN,
        description="The tenant (creditor, portfolio owner) the event belongs to. Consumers "
        "keep it on every record they derive and never mix tenants.",
    )
    actor: str | None = Field(
        default=None,
        max_length=200,
        description="Who caused the event: `<client kind>:<client>` of the API caller, or "
        "absent for the platform's own jobs and consumers.",
        examples=["admin:risk-team"],
    )
    payload: dict[str, Any]

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding (sorted keys, no spaces) used on the wire."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Decode and validate an envelope; raises pydantic.ValidationError or ValueError."""
        return cls.model_validate_json(raw)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: the same value always gives the same bytes (hash-chain input)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
