"""The evidence chain: canonical entries and their hashes. Pure functions, no I/O.

entry_hash = sha256(prev_hash || canonical_entry), with prev_hash of the first entry being 32
zero bytes. The canonical entry holds the sequence number and the whole envelope, so editing,
deleting or reordering any stored byte breaks the chain at that entry.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import json.encoder
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

from services.compliance import merkle
from shared.contracts import canonical_json
from shared.contracts.envelope import DEFAULT_TENANT

GENESIS_HASH = "00" * 32


def canonical_entry(*, seq: int, topic: str, recorded_at: str, envelope: dict[str, Any]) -> bytes:
    """The exact bytes that are hashed and stored for an entry."""
    return canonical_json(
        {"seq": seq, "topic": topic, "recorded_at": recorded_at, "envelope": envelope}
    )


def chain_hash(*, prev_hash: str, entry: bytes) -> str:
    """Hex sha256 of the previous hash's bytes followed by the canonical entry."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + entry).hexdigest()


# canonical_json's options, with the encoder built once: json.dumps builds one per call, which
# was a fifth of the cost of appending a batch. The tests pin it to canonical_json.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
#: How that encoder writes a string (quotes and escapes, non-ASCII kept).
_json_string: Callable[[str], str] = json.encoder.encode_basestring


def canonical_entries(*, first_seq: int, entries: Sequence[tuple[str, str, bytes]]) -> list[bytes]:
    """`canonical_entry` of (topic, recorded_at, envelope) triples numbered from `first_seq`,
    byte for byte, each envelope given as its canonical JSON (`protected_envelope_json`).

    canonical_json writes the four keys sorted (envelope, recorded_at, seq, topic) and each
    value on its own, so a body is those fragments joined."""
    strings: dict[str, bytes] = {}
    bodies = []
    for seq, (topic, recorded_at, envelope_json) in enumerate(entries, first_seq):
        encoded_topic = strings.get(topic)
        if encoded_topic is None:
            encoded_topic = strings[topic] = _json_string(topic).encode()
        encoded_recorded_at = strings.get(recorded_at)
        if encoded_recorded_at is None:
            encoded_recorded_at = strings[recorded_at] = _json_string(recorded_at).encode()
        bodies.append(
            b'{"envelope":%b,"recorded_at":%b,"seq":%d,"topic":%b}'
            % (envelope_json, encoded_recorded_at, seq, encoded_topic)
        )
    return bodies


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
    #: The column listings filter by; entries logged before tenants existed are "default".
    tenant: str = DEFAULT_TENANT


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

    def feed_rows(self, rows: Sequence[Row]) -> bool:
        """`feed` for rows as read from the database (StoredEntry's field order).

        A chunk that passes the batch checks (`chunk_intact`) is accepted as a whole; any other
        is fed entry by entry, which names the first broken entry and its reason exactly as
        `feed` does, so the fast path changes no verdict."""
        if not rows:
            return True
        if self.ok and chunk_intact(rows, first_seq=self.expected_seq, prev_hash=self.prev_hash):
            self.expected_seq += len(rows)
            self.checked += len(rows)
            self.prev_hash = rows[-1][6]
            return True
        return self.feed(StoredEntry(*row) for row in rows)

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
        if is_purged(entry.body):
            # Retention removed the content: the links still hold (the next entry names this
            # hash), the leaf it left is checked by the Merkle root, and a logged purge must
            # cover it (`uncovered_purge`).
            return None if len(entry.body) == len(PURGED_PREFIX) + 32 else "malformed purge mark"
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
                # A tenant edited in the column would move an entry into another tenant's view.
                and envelope.get("tenant", DEFAULT_TENANT) == entry.tenant
            )
        except (ValueError, KeyError, TypeError):
            return "entry body is not a canonical entry"
        if not columns_match:
            return "indexed columns disagree with the hashed entry"
        return None


#: seq, event_id, topic, event_type, body, prev_hash, entry_hash, tenant: one stored entry.
Row = tuple[int, str, str, str, bytes, str, str, str]

_hexdigest = methodcaller("hexdigest")


def chunk_intact(rows: Sequence[Row], *, first_seq: int, prev_hash: str) -> bool:
    """True only if every row passes every check of `ChainVerifier._check`, following an entry
    whose hash is `prev_hash`; False means "look entry by entry" (not necessarily broken).

    The hashing runs as C loops over the whole chunk; the columns are compared with the exact
    fragments the canonical body must contain (`columns_agree`) instead of parsing it."""
    seqs, event_ids, topics, event_types, bodies, prevs, hashes, tenants = zip(*rows, strict=True)
    if seqs != tuple(range(first_seq, first_seq + len(rows))):
        return False
    if prevs[0] != prev_hash or prevs[1:] != hashes[:-1]:
        return False
    try:
        linked = list(map(bytes.__add__, map(bytes.fromhex, prevs), bodies))
    except (ValueError, TypeError):
        return False
    if list(map(_hexdigest, map(hashlib.sha256, linked))) != list(hashes):
        return False
    try:
        return columns_agree(seqs, event_ids, topics, event_types, bodies, tenants)
    except TypeError:  # a column of the wrong type: let the entry-by-entry check say which
        return False


def columns_agree(
    seqs: Sequence[int],
    event_ids: Sequence[str],
    topics: Sequence[str],
    event_types: Sequence[str],
    bodies: Sequence[bytes],
    tenants: Sequence[str],
) -> bool:
    """Whether every canonical entry body holds its row's seq, event id, topic, type and
    tenant, found as the exact bytes canonical JSON writes for them instead of parsing the body.

    Sound for bodies written by `canonical_entry` (the hash chain pins every body to those
    bytes): canonical JSON escapes every quote inside a string, so ``,"`` never occurs inside
    one, and ``,"k":`` always starts the key k of some object. The top-level object ends with
    its last two keys, ``,"seq":N,"topic":T}``. The envelope's keys before event_id
    (actor, causation_id, correlation_id) hold null or strings, so the first ``,"event_id":`` is
    the envelope's; after its type come only version (a number) and the top-level
    recorded_at, seq and topic, so the last ``,"type":`` is the envelope's. Each compared
    value ends at its closing quote (or a delimiter), and the canonical encoding of a string
    is one-to-one: the fragments match exactly when the values are equal. A body that is not
    canonical (or an envelope with other keys) at worst fails here and is parsed instead.
    The envelope's keys sort tenant right before type, so the bytes just before the envelope's
    ``,"type":`` are ``,"tenant":T`` exactly when its tenant is T (an entry logged before
    envelopes had a tenant fails here and is parsed, where a missing tenant means "default")."""
    # Each check is one C loop over the chunk (map over bytes methods), not a call per row;
    # topics and types repeat, so each distinct one is encoded once.
    topic_of = {topic: _json_string(topic).encode() for topic in set(topics)}
    topic_keys = map(topic_of.__getitem__, topics)
    tails = map(b',"seq":%d,"topic":%b}'.__mod__, zip(seqs, topic_keys, strict=True))
    if not all(map(bytes.endswith, bodies, tails)):
        return False
    type_of = {t: b',"type":%b,"version":' % _json_string(t).encode() for t in set(event_types)}
    type_at = list(map(bytes.rfind, bodies, itertools.repeat(b',"type":')))
    if not all(map(bytes.startswith, bodies, map(type_of.__getitem__, event_types), type_at)):
        return False
    tenant_of = {t: b',"tenant":%b' % _json_string(t).encode() for t in set(tenants)}
    tenant_keys = map(tenant_of.__getitem__, tenants)
    if not all(map(bytes.endswith, bodies, tenant_keys, itertools.repeat(0), type_at)):
        return False
    id_keys = map(b',"event_id":%b'.__mod__, map(str.encode, map(_json_string, event_ids)))
    id_at = map(bytes.find, bodies, itertools.repeat(b',"event_id":'))
    return all(map(bytes.startswith, bodies, id_keys, id_at))


#: What retention leaves of an entry: this prefix and the entry's Merkle leaf hash (32 bytes).
#: The prefix starts with a NUL byte, which canonical JSON never writes.
PURGED_PREFIX = b"\x00purged\x00"


def is_purged(body: bytes) -> bool:
    return body.startswith(PURGED_PREFIX)


def purged_body(body: bytes) -> bytes:
    """The stored bytes of an entry once retention has removed its content."""
    return PURGED_PREFIX + merkle.leaf_hash(body)


def leaves_of(bodies: Sequence[bytes]) -> list[bytes]:
    """Merkle leaf hashes of stored bodies; a purged entry carries its own."""
    if not any(map(bytes.startswith, bodies, itertools.repeat(PURGED_PREFIX))):
        return merkle.leaf_hashes(bodies)
    return [
        body[len(PURGED_PREFIX) :] if is_purged(body) else merkle.leaf_hash(body) for body in bodies
    ]


def uncovered_purge(purged: Iterable[int], ranges: Iterable[tuple[int, int]]) -> int | None:
    """The first purged entry no logged purge (`compliance.purged` ranges, inclusive) covers:
    content removed outside retention is tampering, not a purge."""
    spans = sorted(ranges)
    for seq in sorted(purged):
        if not any(first <= seq <= last for first, last in spans):
            return seq
    return None


#: Leaves are folded 2**BLOCK_LEVEL at a time; a log verified in parts is cut at multiples.
BLOCK_LEVEL = 12


@dataclass
class RangeVerified:
    """One part of a log verified on its own (in another process, say): its chain verdict
    and the Merkle nodes recomputed from its leaves (`merkle.PerfectNodes`)."""

    first_seq: int
    #: seq and prev_hash of the part's first row, None if it had none.
    first_row: tuple[int, str] | None
    verifier: ChainVerifier
    block_roots: list[bytes]
    nodes: dict[tuple[int, int], bytes]


def verify_range(
    chunks: Iterable[Sequence[Row]],
    *,
    first_seq: int = 1,
    wanted: Iterable[tuple[int, int]] = (),
    fold_all: bool = False,
) -> RangeVerified:
    """Check the entries from `first_seq` on (`chunks` of rows in seq order) and fold their
    leaves. A part starting after entry 1 takes its first row's prev_hash as given;
    `combine_ranges` checks it against the part before. Reading stops at the first broken
    entry, unless `fold_all` (every row's leaf is folded, as a file verifier wants)."""
    verifier = ChainVerifier(expected_seq=first_seq)
    tree = merkle.PerfectNodes(start=first_seq - 1, block_level=BLOCK_LEVEL, wanted=wanted)
    first_row: tuple[int, str] | None = None
    for rows in chunks:
        if not rows:
            continue
        if first_row is None:
            first_row = (rows[0][0], rows[0][5])
            if first_seq > 1:
                verifier.prev_hash = rows[0][5]
        intact = verifier.ok and verifier.feed_rows(rows)
        if intact or fold_all:
            tree.add(leaves_of([row[4] for row in rows]))
        else:
            break
    tree.finish()
    return RangeVerified(first_seq, first_row, verifier, tree.block_roots, tree.nodes)


def combine_ranges(parts: Sequence[RangeVerified]) -> tuple[ChainVerifier, merkle.NodeReader]:
    """The verdict on consecutive parts (each from the end of the one before, cut at multiples
    of 2**BLOCK_LEVEL entries) exactly as one verifier fed every row in order would give it,
    and a reader of the Merkle nodes they recomputed."""
    verifier = ChainVerifier()
    for part in parts:
        if part.first_row is None or not verifier.ok:
            break
        seq, prev_hash = part.first_row
        if part.first_seq > 1 and seq == part.first_seq and prev_hash != verifier.prev_hash:
            verifier.broken_seq = part.first_seq
            verifier.problem = "prev_hash does not match the previous entry's hash"
            break
        own = part.verifier
        verifier.checked += own.checked
        verifier.expected_seq = own.expected_seq
        verifier.prev_hash = own.prev_hash
        verifier.broken_seq = own.broken_seq
        verifier.problem = own.problem
    reader = merkle.combined_reader(
        block_level=BLOCK_LEVEL,
        block_roots=[root for part in parts for root in part.block_roots],
        nodes={key: value for part in parts for key, value in part.nodes.items()},
    )
    return verifier, reader


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


# A personal field's key is written as "name": in canonical JSON (key strings need no
# escaping), so an envelope whose JSON has none of them holds no personal field at all.
_PERSONAL_KEY = re.compile(f'"(?:{"|".join(sorted(map(re.escape, PERSONAL_FIELDS)))})":')


def protected_envelope_json(envelope: dict[str, Any], *, key: bytes) -> bytes:
    """canonical_json(protect_personal_data(envelope, key=key)), byte for byte.

    Most envelopes carry no personal field: their JSON is written once and searched for the
    keys, and only one that has some is copied with keyed hashes and written again."""
    text = _CANONICAL.encode(envelope)
    if _PERSONAL_KEY.search(text) is not None:
        text = _CANONICAL.encode(protect_personal_data(envelope, key=key))
    return text.encode()


def _keyed_hash(value: Any, *, key: bytes) -> Any:
    if isinstance(value, dict):  # keep the structure (which inputs were present), hide values
        return {k: _keyed_hash(v, key=key) for k, v in value.items()}
    if value is None:
        return None
    digest = hmac.new(key, canonical_json(value), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"
