"""HTTP response models of the compliance API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    seq: int
    event_id: str
    topic: str
    event_type: str
    case_key: str | None
    occurred_at: datetime
    recorded_at: datetime
    envelope: dict[str, Any]
    prev_hash: str
    entry_hash: str


class AuditEntries(BaseModel):
    entries: list[AuditEntryOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq to read the next page; null on the last page."
    )


class ChainVerification(BaseModel):
    """Result of recomputing the whole chain from the first entry."""

    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None


class TreeHead(BaseModel):
    """RFC 6962 tree head over the evidence log: anchor it anywhere outside the system."""

    tree_size: int
    root_hash: str = Field(description="Hex SHA-256 Merkle root (RFC 6962 hashing).")


class InclusionProof(BaseModel):
    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]
    root_hash: str


class ConsistencyProof(BaseModel):
    first_size: int
    second_size: int
    first_root: str
    second_root: str
    proof: list[str]


class CheckpointOut(BaseModel):
    model_config = {"from_attributes": True}

    tree_size: int
    root_hash: str
    issued_at: datetime
    key_id: str
    public_key: str
    signature: str
