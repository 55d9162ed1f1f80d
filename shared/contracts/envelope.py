"""The one envelope every Qingshou message travels in."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


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
