"""The evidence chain: canonical entries and their hashes. Pure functions, no I/O.

entry_hash = sha256(prev_hash || canonical_entry), with prev_hash of the first entry being 32
zero bytes. The canonical entry holds the sequence number and the whole envelope, so editing,
deleting or reordering any stored byte breaks the chain at that entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.contracts import canonical_json

GENESIS_HASH = "00" * 32


def canonical_entry(*, seq: int, topic: str, recorded_at: str, envelope: dict[str, Any]) -> bytes:
    """The exact bytes that are hashed and stored for an entry."""
    return canonical_json(
        {"seq": seq, "topic": topic, "recorded_at": recorded_at, "envelope": envelope}
    )


def chain_hash(*, prev_hash: str, entry: bytes) -> str:
    """Hex sha256 of the previous hash's bytes followed by the canonical entry."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + entry).hexdigest()


@dataclass(frozen=True)
class StoredEntry:
    """What the database holds for one entry, as read back for verification."""

    seq: int
    event_id: str
    topic: str
    event_type: str
    body: bytes
    prev_hash: str
    entry_hash: str


@dataclass
class ChainVerifier:
    """Feed entries in sequence order; the first inconsistency is kept with its reason."""

    expected_seq: int = 1
    prev_hash: str = GENESIS_HASH
    checked: int = 0
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def feed(self, entries: Iterable[StoredEntry]) -> bool:
        """Check `entries`; returns False as soon as one is broken."""
        for entry in entries:
            problem = self._check(entry)
            if problem is not None:
                self.broken_seq = entry.seq if entry.seq == self.expected_seq else self.expected_seq
                self.problem = problem
                return False
            self.prev_hash = entry.entry_hash
            self.expected_seq += 1
            self.checked += 1
        return True

    def _check(self, entry: StoredEntry) -> str | None:
        if entry.seq != self.expected_seq:
            return f"expected entry {self.expected_seq}, found {entry.seq} (deleted or reordered)"
        if entry.prev_hash != self.prev_hash:
            return "prev_hash does not match the previous entry's hash"
        if chain_hash(prev_hash=entry.prev_hash, entry=entry.body) != entry.entry_hash:
            return "entry_hash does not match the entry's content"
        try:
            body = json.loads(entry.body)
            envelope = body["envelope"]
            columns_match = (
                body["seq"] == entry.seq
                and body["topic"] == entry.topic
                and envelope["event_id"] == entry.event_id
                and envelope["type"] == entry.event_type
            )
        except (ValueError, KeyError, TypeError):
            return "entry body is not a canonical entry"
        if not columns_match:
            return "indexed columns disagree with the hashed entry"
        return None


#: Payload fields that identify or describe a person: kept in the evidence log only as keyed
#: hashes (HMAC-SHA256), so the log can prove "this value was sent" without holding it.
PERSONAL_FIELDS = frozenset(
    {"account_id", "name", "phone", "email", "national_id", "address", "risk_features"}
)


def protect_personal_data(value: Any, *, key: bytes) -> Any:
    """A copy of an envelope with personal fields replaced by keyed hashes (recursively)."""
    if isinstance(value, dict):
        return {
            k: _keyed_hash(v, key=key)
            if k in PERSONAL_FIELDS
            else protect_personal_data(v, key=key)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [protect_personal_data(v, key=key) for v in value]
    return value


def _keyed_hash(value: Any, *, key: bytes) -> Any:
    if isinstance(value, dict):  # keep the structure (which inputs were present), hide values
        return {k: _keyed_hash(v, key=key) for k, v in value.items()}
    if value is None:
        return None
    digest = hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"
