"""Complaints and quality assurance: the pure part (no I/O, no clock, no database).

* Complaint lifecycle: categories, channels, statuses, the transition table and which statuses
  place a contact hold.
* SLA clocks: first response (2 h) and a resolution target per category, in calendar time.
* Near-duplicate campaigns: the same complaint text filed for many debtors (templates from
  "debt relief" agents, copy-paste drives), found with MinHash + LSH, for Chinese and English.
* QA sampling: which contacts supervisors (weekly) and QA (monthly) review, and review outcomes.

Callers pass `now`; every datetime must be timezone-aware.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from shared.contracts import ComplaintCategory as ComplaintCategory  # re-exported


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {value.isoformat()}")


def _require_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------


class ComplaintChannel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
    WEB = "web"
    SMS = "sms"
    REGULATOR = "regulator"
    SOCIAL_MEDIA = "social_media"
    IN_PERSON = "in_person"


class ComplaintStatus(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


_S = ComplaintStatus

#: Allowed moves. `received` cannot go straight to `investigating`: the complainant is told first
#: (acknowledged), so internal work can never silently run past the first-response clock.
#: resolved/rejected -> investigating is a reopening. `withdrawn` is final: a complainant who
#: changes their mind files a new complaint, with fresh clocks and a fresh hold.
TRANSITIONS: Mapping[ComplaintStatus, frozenset[ComplaintStatus]] = MappingProxyType(
    {
        _S.RECEIVED: frozenset({_S.ACKNOWLEDGED, _S.RESOLVED, _S.REJECTED, _S.WITHDRAWN}),
        _S.ACKNOWLEDGED: frozenset({_S.INVESTIGATING, _S.RESOLVED, _S.REJECTED, _S.WITHDRAWN}),
        _S.INVESTIGATING: frozenset({_S.RESOLVED, _S.REJECTED, _S.WITHDRAWN}),
        _S.RESOLVED: frozenset({_S.INVESTIGATING}),
        _S.REJECTED: frozenset({_S.INVESTIGATING}),
        _S.WITHDRAWN: frozenset(),
    }
)

#: Statuses in which the complaint is open and contact about the debt is on hold.
OPEN_STATUSES: frozenset[ComplaintStatus] = frozenset(
    {_S.RECEIVED, _S.ACKNOWLEDGED, _S.INVESTIGATING}
)
#: Statuses that tell the complainant something: reaching one stops the first-response clock.
RESPONSE_STATUSES: frozenset[ComplaintStatus] = frozenset(
    {_S.ACKNOWLEDGED, _S.RESOLVED, _S.REJECTED}
)
#: A decision on the merits (upheld or not): stops the resolution clock.
DECISION_STATUSES: frozenset[ComplaintStatus] = frozenset({_S.RESOLVED, _S.REJECTED})


class InvalidTransition(ValueError):
    """A status change the transition table does not allow."""

    def __init__(self, current: ComplaintStatus, target: ComplaintStatus) -> None:
        self.current = current
        self.target = target
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing, it is final"
        super().__init__(
            f"a complaint cannot go from {current.value!r} to {target.value!r} "
            f"(from {current.value!r} it may go to: {allowed})"
        )


def next_status(current: ComplaintStatus | str, target: ComplaintStatus | str) -> ComplaintStatus:
    """`target` if the table allows current -> target, else InvalidTransition."""
    cur, tgt = ComplaintStatus(current), ComplaintStatus(target)
    if tgt not in TRANSITIONS[cur]:
        raise InvalidTransition(cur, tgt)
    return tgt


def places_hold(status: ComplaintStatus | str) -> bool:
    """Whether a complaint in `status` holds contact about the debt (REGULATIONS: "open complaint
    under review" blocks all contact). received/acknowledged/investigating place it;
    resolved, rejected and withdrawn lift it, and a reopening (back to investigating) places it
    again."""
    return ComplaintStatus(status) in OPEN_STATUSES


@dataclass(frozen=True)
class StatusChange:
    """One entry of a complaint's status history."""

    status: ComplaintStatus
    at: datetime
    by: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ComplaintStatus(self.status))
        _require_aware("StatusChange.at", self.at)


def _replay(
    received_at: datetime, history: Sequence[StatusChange], now: datetime | None = None
) -> list[StatusChange]:
    """The changes after intake, checked: allowed moves, in time order, none before receipt or
    after `now`. A leading `received` entry (the intake itself) is accepted and dropped."""
    _require_aware("received_at", received_at)
    changes = list(history)
    if changes and changes[0].status is ComplaintStatus.RECEIVED:
        changes = changes[1:]
    status, previous = ComplaintStatus.RECEIVED, received_at
    for change in changes:
        status = next_status(status, change.status)
        if change.at < previous:
            raise ValueError(
                f"status history out of order: {change.status.value} at {change.at.isoformat()} "
                f"is before {previous.isoformat()}"
            )
        if now is not None and change.at > now:
            raise ValueError(
                f"status history has {change.status.value} at {change.at.isoformat()}, "
                f"after now ({now.isoformat()})"
            )
        previous = change.at
    return changes


def current_status(history: Sequence[StatusChange]) -> ComplaintStatus:
    """The status after the last change (`received` for an empty history)."""
    return history[-1].status if history else ComplaintStatus.RECEIVED


def append_change(
    history: Sequence[StatusChange], change: StatusChange, *, received_at: datetime
) -> tuple[StatusChange, ...]:
    """The history with `change` appended, after checking the move and its time."""
    _replay(received_at, [*history, change])
    return (*history, change)


# ---------------------------------------------------------------------------------------------
# SLA clocks
# ---------------------------------------------------------------------------------------------


class SlaClock(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


#: DOMAIN.md: "Complaints: respond within 2 hours".
DEFAULT_FIRST_RESPONSE = timedelta(hours=2)

#: Resolution targets, calendar time from receipt. Configurable defaults, not law (status S/U in
#: REGULATIONS.md terms):
#: * 15 days is the financial-complaint deadline Chinese regulators set (CBIRC 银行业保险业消费投诉
#:   处理管理办法 2020: decision within 15 days, 30 if complex, 60 at most) and a common deadline
#:   for personal-information requests; PIPL art. 50 itself only asks for a convenient mechanism
#:   and reasons for refusals, no number.
#: * harassment and third-party contact: 5 days, because the harm is conduct that may still be
#:   going on (other debtors, the same agent) and the recordings to check it already exist.
#: * not_my_debt / wrong_amount are also disputes: the dispute hold (not this clock) stops
#:   collection until the debt is verified, so 15 days is about answering, not about contact.
#: UK DISP 1.6 (final response within 8 weeks) is an outer bound none of these come near.
DEFAULT_RESOLUTION_TARGETS: Mapping[ComplaintCategory, timedelta] = MappingProxyType(
    {
        ComplaintCategory.HARASSMENT: timedelta(days=5),
        ComplaintCategory.THIRD_PARTY_CONTACT: timedelta(days=5),
        ComplaintCategory.PRIVACY: timedelta(days=15),
        ComplaintCategory.NOT_MY_DEBT: timedelta(days=15),
        ComplaintCategory.WRONG_AMOUNT: timedelta(days=15),
        ComplaintCategory.OTHER: timedelta(days=15),
    }
)


def _default_targets() -> Mapping[ComplaintCategory, timedelta]:
    return DEFAULT_RESOLUTION_TARGETS


@dataclass(frozen=True)
class SlaPolicy:
    """SLA targets, counted in calendar time (nights and holidays included; business-hours
    counting is not implemented). `resolution` may name only some categories: the others keep
    their default target."""

    first_response: timedelta = DEFAULT_FIRST_RESPONSE
    resolution: Mapping[ComplaintCategory, timedelta] = field(
        default_factory=_default_targets, hash=False
    )

    def __post_init__(self) -> None:
        if self.first_response <= timedelta(0):
            raise ValueError("first_response target must be positive")
        merged = dict(DEFAULT_RESOLUTION_TARGETS)
        for category, target in self.resolution.items():
            if target <= timedelta(0):
                raise ValueError(f"resolution target for {category} must be positive")
            merged[ComplaintCategory(category)] = target
        object.__setattr__(self, "resolution", MappingProxyType(merged))

    def resolution_target(self, category: ComplaintCategory | str) -> timedelta:
        """The resolution target for `category`."""
        return self.resolution[ComplaintCategory(category)]


DEFAULT_SLA_POLICY = SlaPolicy()


@dataclass(frozen=True)
class SlaState:
    """Both clocks as of `now`.

    `*_met`: True/False once the clock has stopped (in time / late); while it runs, None until
    the due time has passed, then False. `*_remaining`: due - now while the clock runs (negative
    once overdue), None once it has stopped. `breached` lists the clocks whose `*_met` is False.
    """

    status: ComplaintStatus
    first_response_due: datetime
    first_response_at: datetime | None
    first_response_met: bool | None
    first_response_remaining: timedelta | None
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_met: bool | None
    resolution_remaining: timedelta | None
    breached: tuple[SlaClock, ...]


def _clock(
    *, due: datetime, stopped_at: datetime | None, answered: bool, now: datetime
) -> tuple[bool | None, timedelta | None]:
    if stopped_at is None:  # still running
        return (None if now <= due else False), due - now
    if answered:
        return stopped_at <= due, None
    # Withdrawn unanswered: nothing left to judge if it was withdrawn in time; if the clock had
    # already run out, the breach stands.
    return (None if stopped_at <= due else False), None


def sla_state(
    *,
    received_at: datetime,
    category: ComplaintCategory | str,
    history: Sequence[StatusChange],
    policy: SlaPolicy = DEFAULT_SLA_POLICY,
    now: datetime,
) -> SlaState:
    """Where the first-response and resolution clocks stand at `now`.

    First response: the first move to acknowledged, resolved or rejected (investigating is
    internal work and tells the complainant nothing). Resolution: the latest resolved/rejected,
    judged against the due time counted from the original receipt. A reopening restarts nothing:
    the resolution clock runs on from receipt, so a complaint reopened after its due time is
    breached until (and after) it is decided again; the first response stays as it was.
    Withdrawal stops both clocks. There is no "awaiting complainant" pause.
    """
    _require_aware("now", now)
    _require_aware("received_at", received_at)
    if now < received_at:
        raise ValueError(f"now ({now.isoformat()}) is before receipt ({received_at.isoformat()})")
    changes = _replay(received_at, history, now)

    status = ComplaintStatus.RECEIVED
    first_response_at: datetime | None = None
    decided_at: datetime | None = None
    withdrawn_at: datetime | None = None
    for change in changes:
        status = change.status
        if first_response_at is None and status in RESPONSE_STATUSES:
            first_response_at = change.at
        if status in DECISION_STATUSES:
            decided_at = change.at
        elif status is ComplaintStatus.WITHDRAWN:
            withdrawn_at = change.at

    first_due = received_at + policy.first_response
    first_met, first_remaining = _clock(
        due=first_due,
        stopped_at=first_response_at or withdrawn_at,
        answered=first_response_at is not None,
        now=now,
    )
    resolution_due = received_at + policy.resolution_target(category)
    # After a reopening the earlier decision no longer counts until a new one is made.
    resolved_at = decided_at if status in DECISION_STATUSES else None
    resolution_met, resolution_remaining = _clock(
        due=resolution_due,
        stopped_at=resolved_at or withdrawn_at,
        answered=resolved_at is not None,
        now=now,
    )
    breached = tuple(
        clock
        for clock, met in (
            (SlaClock.FIRST_RESPONSE, first_met),
            (SlaClock.RESOLUTION, resolution_met),
        )
        if met is False
    )
    return SlaState(
        status=status,
        first_response_due=first_due,
        first_response_at=first_response_at,
        first_response_met=first_met,
        first_response_remaining=first_remaining,
        resolution_due=resolution_due,
        resolved_at=resolved_at,
        resolution_met=resolution_met,
        resolution_remaining=resolution_remaining,
        breached=breached,
    )


# ---------------------------------------------------------------------------------------------
# Near-duplicate campaigns
# ---------------------------------------------------------------------------------------------
#
# Texts are normalised (letters and digits only, NFKC, casefold, digit runs -> "0"), cut into
# character shingles and summarised by a 128-value MinHash signature, whose share of equal values
# estimates the Jaccard similarity of the shingle sets.
#
# Shingles: 3 characters when at least half the text is CJK, otherwise 5. Characters, not
# words, because Chinese has no spaces and because copy-paste edits (spaces, punctuation,
# typos, split words) then cost only a few shingles. A Han character carries about what 2-3
# Latin letters do. Measured on a 180-character template: a changed name, two insertions and
# new punctuation keep Jaccard 0.89 with 3-grams (4-grams 0.87); adding a dropped sentence and
# a third insertion gives 0.79 (4-grams 0.75); an unrelated complaint on the same subject shares
# about 1% of 3-grams. For English, 5-grams kept a typo'd copy at 0.93 (word 3-grams 0.80) with
# about 1% overlap between unrelated complaints.
#
# Hashing is deterministic (never Python's salted hash()): a shingle's code points are folded
# into 64 bits and mixed (MurmurHash3's fmix64), then each of the 128 MinHash functions is a
# multiply-shift hash h(x) = ((a*x + b) mod 2**64) >> 32 whose a, b come from BLAKE2b of a fixed
# seed. This is vectorised with numpy; BLAKE2b per shingle measured ~1.4 us, i.e. ~3 s of pure
# hashing for 10,000 complaints, versus ~0.1 ms per complaint for the whole signature here.

#: Stored signatures are only comparable under the same scheme: store this next to them and
#: recompute when it changes.
SIGNATURE_SCHEME = "minhash128-ms64-blake2b-v1;nfkc-casefold-alnum-digits0;cjk3-other5;min20"
NUM_PERM = 128
CJK_SHINGLE = 3
OTHER_SHINGLE = 5
#: Shorter (normalised) texts get the empty signature and never match: "不是我的债" or "stop
#: calling me" is written independently by many people and proves no common author.
MIN_CHARS = 20
DEFAULT_THRESHOLD = 0.8
DEFAULT_MIN_DEBTORS = 5

_SEED = b"qingshou/compliance/complaints/minhash/v1"
_U64 = npt.NDArray[np.uint64]


def _seed_words(count: int) -> list[int]:
    return [
        int.from_bytes(hashlib.blake2b(_SEED + i.to_bytes(4, "big"), digest_size=8).digest(), "big")
        for i in range(count)
    ]


_WORDS = _seed_words(2 * NUM_PERM + 1)
_MUL: _U64 = np.array([w | 1 for w in _WORDS[:NUM_PERM]], dtype=np.uint64)[:, None]  # odd a
_ADD: _U64 = np.array(_WORDS[NUM_PERM : 2 * NUM_PERM], dtype=np.uint64)[:, None]
_FOLD = np.uint64(_WORDS[-1] | 1)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT33 = np.uint64(33)
_SHIFT32 = np.uint64(32)
# Caps the (NUM_PERM x shingles) uint64 work matrix at 8 MB however many texts come at once.
_CHUNK_SHINGLES = 8192

_NOT_ALNUM = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")
# Text counts as CJK (3-character shingles) when half its characters fall in these blocks.
_CJK_BLOCKS = (
    (0x3040, 0x3100),  # hiragana, katakana
    (0x3400, 0x4DC0),  # Han extension A
    (0x4E00, 0xA000),  # Han
    (0xAC00, 0xD7B0),  # Hangul syllables
    (0xF900, 0xFB00),  # compatibility ideographs
    (0x20000, 0x31350),  # Han extensions B-G
)
# Sorted start/end points: a code point is inside a block when its insertion index is odd.
_CJK_BOUNDS = np.array([p for block in _CJK_BLOCKS for p in block], dtype=np.uint32)


def normalise_text(text: str) -> str:
    """What near-duplicate detection compares: letters and digits only, NFKC, casefolded, each
    run of digits as one "0" (amounts, dates and account numbers differ between copies of a
    template, and "5,000" must equal "5000")."""
    # Punctuation goes first: full-width commas and stops (U+FF0C, U+3002) would otherwise send
    # NFKC down its slow path for the whole text (~40 us for 200 Han characters instead of
    # ~1 us). The cost: symbols such as "™" or "℃" are dropped instead of becoming letters.
    letters = _NOT_ALNUM.sub("", text)
    composed = unicodedata.normalize("NFKC", letters)
    if composed != letters:  # e.g. "½" -> "1", U+2044, "2": drop what NFKC brought in
        composed = _NOT_ALNUM.sub("", composed)
    return _DIGITS.sub("0", composed.casefold())


def _shingle_hashes(norm: str) -> _U64:
    points = np.frombuffer(norm.encode("utf-32-le"), dtype="<u4")
    cjk = int((np.searchsorted(_CJK_BOUNDS, points, side="right") & 1).sum())
    width = min(CJK_SHINGLE if 2 * cjk >= len(points) else OTHER_SHINGLE, len(points))
    codes = points.astype(np.uint64)
    count = len(codes) - width + 1
    x: _U64 = np.full(count, width, dtype=np.uint64)
    for j in range(width):  # polynomial fold; uint64 arithmetic wraps mod 2**64 by design
        x = x * _FOLD + codes[j : j + count]
    x ^= x >> _SHIFT33
    x *= _FMIX1
    x ^= x >> _SHIFT33
    x *= _FMIX2
    x ^= x >> _SHIFT33
    return x


def _minhash_chunk(hashes: Sequence[_U64], buffer: _U64) -> list[tuple[int, ...]]:
    flat = np.concatenate(hashes)
    if buffer.shape[1] >= len(flat):
        work = buffer[:, : len(flat)]
    else:  # one text longer than a whole chunk
        work = np.empty((NUM_PERM, len(flat)), dtype=np.uint64)
    np.multiply(_MUL, flat, out=work)
    work += _ADD
    work >>= _SHIFT32
    starts = np.cumsum([0, *(len(h) for h in hashes[:-1])])
    mins = np.minimum.reduceat(work, starts, axis=1)
    rows: list[list[int]] = mins.T.tolist()
    return [tuple(row) for row in rows]


def _signatures(norms: Sequence[str], min_chars: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [() for _ in norms]
    todo = [(i, _shingle_hashes(n)) for i, n in enumerate(norms) if len(n) >= max(min_chars, 1)]
    if not todo:
        return out
    # One work buffer for all chunks: allocating it afresh per chunk costs as much as the hashing.
    width = min(_CHUNK_SHINGLES, sum(len(h) for _, h in todo))
    buffer: _U64 = np.empty((NUM_PERM, width), dtype=np.uint64)
    start = 0
    while start < len(todo):
        stop, size = start, 0
        while stop < len(todo) and (stop == start or size + len(todo[stop][1]) <= width):
            size += len(todo[stop][1])
            stop += 1
        chunk = todo[start:stop]
        sigs = _minhash_chunk([h for _, h in chunk], buffer)
        for (index, _), sig in zip(chunk, sigs, strict=True):
            out[index] = sig
        start = stop
    return out


def signature(text: str, *, min_chars: int = MIN_CHARS) -> tuple[int, ...]:
    """The MinHash signature of `text` (NUM_PERM ints below 2**32; store it with
    SIGNATURE_SCHEME), or () when the normalised text is shorter than `min_chars`."""
    return _signatures([normalise_text(text)], min_chars)[0]


def similarity(sig_a: Sequence[int], sig_b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures' texts; 0.0 if either is empty."""
    if not sig_a or not sig_b:
        return 0.0
    if len(sig_a) != len(sig_b):
        raise ValueError(
            f"signatures of different lengths ({len(sig_a)} and {len(sig_b)}): different schemes"
        )
    equal: int = sum(map(operator.eq, sig_a, sig_b))
    return equal / len(sig_a)


def _band_shape(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(rows, bands) for LSH: the most rows per band (fewest false candidates) that still make a
    pair at exactly `threshold` a candidate with probability >= 99.5%."""
    best = (1, num_perm)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= 0.995:
            best = (rows, bands)
    return best


@dataclass(frozen=True)
class ComplaintText:
    """A complaint's text, for campaign detection."""

    complaint_id: str
    debtor_id: str
    text: str
    received_at: datetime

    def __post_init__(self) -> None:
        _require_text("complaint_id", self.complaint_id)
        _require_text("debtor_id", self.debtor_id)
        _require_aware("received_at", self.received_at)


@dataclass(frozen=True)
class Match:
    complaint_id: str
    debtor_id: str
    similarity: float


@dataclass(frozen=True)
class Campaign:
    """A cluster of near-duplicate complaints. A signal for review (who is filing them, is an
    agent involved), never grounds to reject: each complaint still places its hold and runs its
    own clocks."""

    complaint_ids: tuple[str, ...]  # in order of receipt
    debtor_ids: tuple[str, ...]  # sorted
    debtor_count: int
    representative_id: str  # the earliest complaint
    representative_text: str | None
    first_received_at: datetime
    last_received_at: datetime


#: How many members of one cluster each LSH bucket keeps for linking new complaints. A new
#: complaint that shares a bucket with a cluster is compared with these few, not with every
#: member, so a 5,000-copy campaign costs the same per complaint as a 5-copy one. Members of a
#: template campaign all resemble its first members, so little is lost.
_REPS_PER_CLUSTER = 4


class CampaignIndex:
    """Incremental near-duplicate index: add each complaint's signature, ask which stored
    complaints are similar and which clusters are campaigns. Clusters are single-linkage:
    complaints joined by a chain of pairs with estimated similarity >= threshold."""

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._threshold = threshold
        self._rows, self._bands = _band_shape(threshold)
        self._ids: list[str] = []
        self._debtors: list[str] = []
        self._received: list[datetime] = []
        self._texts: list[str | None] = []
        self._sigs: list[tuple[int, ...]] = []
        self._position: dict[str, int] = {}
        self._parent: list[int] = []
        self._members: dict[int, list[int]] = {}  # root -> members
        # One dict per band: a band's values -> a few members of each cluster that have them.
        self._reps: list[dict[tuple[int, ...], list[int]]] = [{} for _ in range(self._bands)]

    @property
    def threshold(self) -> float:
        return self._threshold

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, complaint_id: object) -> bool:
        return complaint_id in self._position

    def _buckets(
        self, sig: tuple[int, ...]
    ) -> list[tuple[dict[tuple[int, ...], list[int]], tuple[int, ...]]]:
        r = self._rows
        return [(table, sig[band * r : (band + 1) * r]) for band, table in enumerate(self._reps)]

    def _find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, a: int, b: int) -> int:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return ra
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra].extend(self._members.pop(rb))
        return ra

    def _check_signature(self, sig: Sequence[int]) -> tuple[int, ...]:
        if sig and len(sig) != NUM_PERM:
            raise ValueError(f"a signature has {NUM_PERM} values, got {len(sig)}")
        return tuple(sig)

    def add(
        self,
        complaint_id: str,
        sig: Sequence[int],
        *,
        debtor_id: str,
        received_at: datetime,
        text: str | None = None,
    ) -> None:
        """Store a complaint and link it to the clusters it is similar to. An empty signature
        (text too short) is stored but never links."""
        _require_text("complaint_id", complaint_id)
        _require_text("debtor_id", debtor_id)
        _require_aware("received_at", received_at)
        if complaint_id in self._position:
            raise ValueError(f"complaint {complaint_id!r} is already in the index")
        stored = self._check_signature(sig)
        i = len(self._ids)
        self._ids.append(complaint_id)
        self._debtors.append(debtor_id)
        self._received.append(received_at)
        self._texts.append(text)
        self._sigs.append(stored)
        self._position[complaint_id] = i
        self._parent.append(i)
        self._members[i] = [i]
        if not stored:
            return
        buckets = self._buckets(stored)
        compared: set[int] = set()
        for table, key in buckets:
            for member in table.get(key, ()):
                if member in compared or self._find(member) == self._find(i):
                    continue
                compared.add(member)
                if similarity(stored, self._sigs[member]) >= self._threshold:
                    self._union(i, member)
        root = self._find(i)
        for table, key in buckets:
            bucket = table.setdefault(key, [])
            if (
                len(bucket) < _REPS_PER_CLUSTER
                or sum(1 for m in bucket if self._find(m) == root) < _REPS_PER_CLUSTER
            ):
                bucket.append(i)

    def query(self, sig: Sequence[int], *, limit: int | None = None) -> list[Match]:
        """Stored complaints whose similarity to `sig` is at least the threshold, most similar
        first. Every cluster that shares an LSH bucket with `sig` is checked member by member."""
        wanted = self._check_signature(sig)
        if not wanted:
            return []
        roots = {self._find(m) for table, key in self._buckets(wanted) for m in table.get(key, ())}
        matches: list[Match] = []
        for root in roots:
            for member in self._members[root]:
                score = similarity(wanted, self._sigs[member])
                if score >= self._threshold:
                    matches.append(Match(self._ids[member], self._debtors[member], score))
        matches.sort(
            key=lambda m: (
                -m.similarity,
                self._received[self._position[m.complaint_id]],
                m.complaint_id,
            )
        )
        return matches if limit is None else matches[:limit]

    def cluster(self, complaint_id: str) -> Campaign:
        """The near-duplicate cluster holding `complaint_id`, whatever its size."""
        if complaint_id not in self._position:
            raise KeyError(complaint_id)
        return self._campaign(self._find(self._position[complaint_id]))

    def campaigns(self, *, min_debtors: int = DEFAULT_MIN_DEBTORS) -> list[Campaign]:
        """Clusters spanning at least `min_debtors` distinct debtors, largest first."""
        if min_debtors < 2:
            raise ValueError("a campaign needs at least 2 debtors (min_debtors >= 2)")
        found = [
            self._campaign(root)
            for root, members in self._members.items()
            if len(members) >= min_debtors
            and len({self._debtors[m] for m in members}) >= min_debtors
        ]
        found.sort(key=lambda c: (-c.debtor_count, c.first_received_at, c.representative_id))
        return found

    def _campaign(self, root: int) -> Campaign:
        members = sorted(self._members[root], key=lambda m: (self._received[m], self._ids[m]))
        debtors = sorted({self._debtors[m] for m in members})
        first = members[0]
        return Campaign(
            complaint_ids=tuple(self._ids[m] for m in members),
            debtor_ids=tuple(debtors),
            debtor_count=len(debtors),
            representative_id=self._ids[first],
            representative_text=self._texts[first],
            first_received_at=self._received[first],
            last_received_at=self._received[members[-1]],
        )


def find_campaigns(
    items: Iterable[ComplaintText],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_debtors: int = DEFAULT_MIN_DEBTORS,
    min_chars: int = MIN_CHARS,
) -> list[Campaign]:
    """Near-duplicate clusters among `items` that span at least `min_debtors` distinct debtors.
    The result does not depend on the order of `items`."""
    ordered = sorted(items, key=lambda c: (c.received_at, c.complaint_id))
    sigs = _signatures([normalise_text(c.text) for c in ordered], min_chars)
    index = CampaignIndex(threshold=threshold)
    for item, sig in zip(ordered, sigs, strict=True):
        index.add(
            item.complaint_id,
            sig,
            debtor_id=item.debtor_id,
            received_at=item.received_at,
            text=item.text,
        )
    return index.campaigns(min_debtors=min_debtors)


# ---------------------------------------------------------------------------------------------
# Quality assurance sampling
# ---------------------------------------------------------------------------------------------


class ReviewerKind(StrEnum):
    SUPERVISOR = "supervisor"
    QA = "qa"


@dataclass(frozen=True)
class ContactForReview:
    contact_id: str
    at: datetime
    supervisor: str | None
    collector: str | None
    channel: str

    def __post_init__(self) -> None:
        _require_text("contact_id", self.contact_id)
        _require_aware("ContactForReview.at", self.at)


def _check_rate(name: str, rate: float) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TypeError(f"{name} must be a number")
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"{name} must be between 0 and 1, got {rate}")


@dataclass(frozen=True)
class SamplingPolicy:
    """DOMAIN.md: supervisors review ~20% of contacts weekly, QA ~10% monthly."""

    supervisor_rate: float = 0.20  # of each supervisor's contacts, per ISO week
    qa_rate: float = 0.10  # of all contacts, per calendar month

    def __post_init__(self) -> None:
        _check_rate("supervisor_rate", self.supervisor_rate)
        _check_rate("qa_rate", self.qa_rate)


DEFAULT_SAMPLING_POLICY = SamplingPolicy()
#: Weeks and months are cut in this zone unless the caller says otherwise (the default rule
#: pack is `cn`; a UTC week would put Monday 00:00-08:00 Beijing time in the previous week).
DEFAULT_SAMPLING_ZONE: tzinfo = ZoneInfo("Asia/Shanghai")
#: Shorter salts could be brute-forced by someone wanting to know which contacts get reviewed.
MIN_SALT_BYTES = 16


@dataclass(frozen=True)
class ReviewAssignment:
    contact_id: str
    reviewer_kind: ReviewerKind
    period: str  # "2026-W48" (supervisor) or "2026-11" (QA)
    supervisor: str | None


def week_label(at: datetime, zone: tzinfo = DEFAULT_SAMPLING_ZONE) -> str:
    """ISO week of `at` in `zone`, e.g. "2026-W48"."""
    _require_aware("at", at)
    year, week, _ = at.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def month_label(at: datetime, zone: tzinfo = DEFAULT_SAMPLING_ZONE) -> str:
    """Calendar month of `at` in `zone`, e.g. "2026-11"."""
    _require_aware("at", at)
    local = at.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def sample_size(rate: float, population: int) -> int:
    """ceil(rate x population), exact for decimal rates (in floats 0.07 x 100 is
    7.000000000000001, whose ceiling is 8)."""
    _check_rate("rate", rate)
    if population < 0:
        raise ValueError("population cannot be negative")
    return math.ceil(Fraction(str(rate)) * population)


def _rank(salt: bytes, kind: ReviewerKind, contact_id: str) -> bytes:
    # Each contact's rank depends only on its own id, so adding a contact moves at most one
    # earlier choice; the kind is mixed in so the QA sample is drawn independently of the
    # supervisors' and does not simply re-review the same contacts.
    message = kind.value.encode() + b"\x00" + contact_id.encode()
    return hmac.new(salt, message, hashlib.sha256).digest()


def plan_reviews(
    contacts: Iterable[ContactForReview],
    *,
    policy: SamplingPolicy = DEFAULT_SAMPLING_POLICY,
    salt: bytes,
    zone: tzinfo = DEFAULT_SAMPLING_ZONE,
) -> list[ReviewAssignment]:
    """Which contacts get reviewed: per supervisor and ISO week, ceil(supervisor_rate x n) of
    that supervisor's contacts; per calendar month, ceil(qa_rate x n) of all contacts. Within
    each group the contacts with the lowest HMAC-SHA256(salt, id) are chosen, so the plan is
    deterministic, cannot be predicted without the secret salt, and barely moves when contacts
    are added. Contacts without a supervisor are only in the QA draw."""
    if not isinstance(salt, bytes) or len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"salt must be at least {MIN_SALT_BYTES} secret bytes")
    groups: dict[tuple[ReviewerKind, str, str | None], list[ContactForReview]] = {}
    seen: set[str] = set()
    for contact in contacts:
        if contact.contact_id in seen:
            raise ValueError(f"contact {contact.contact_id!r} appears twice")
        seen.add(contact.contact_id)
        if contact.supervisor is not None:
            week = week_label(contact.at, zone)
            groups.setdefault((ReviewerKind.SUPERVISOR, week, contact.supervisor), []).append(
                contact
            )
        groups.setdefault((ReviewerKind.QA, month_label(contact.at, zone), None), []).append(
            contact
        )

    rates = {ReviewerKind.SUPERVISOR: policy.supervisor_rate, ReviewerKind.QA: policy.qa_rate}
    plan: list[ReviewAssignment] = []
    for (kind, period, supervisor), members in sorted(
        groups.items(), key=lambda g: (g[0][0].value, g[0][1], g[0][2] or "")
    ):
        count = sample_size(rates[kind], len(members))
        chosen = sorted(members, key=lambda c: (_rank(salt, kind, c.contact_id), c.contact_id))
        picked = sorted(chosen[:count], key=lambda c: (c.at, c.contact_id))
        plan.extend(ReviewAssignment(c.contact_id, kind, period, supervisor) for c in picked)
    return plan


@dataclass(frozen=True)
class ReviewOutcome:
    """A completed review, kept as evidence. A failed review must name what was wrong."""

    contact_id: str
    reviewer: str
    score: int
    passed: bool
    findings: tuple[str, ...]
    reviewed_at: datetime

    def __post_init__(self) -> None:
        _require_text("contact_id", self.contact_id)
        _require_text("reviewer", self.reviewer)
        if isinstance(self.score, bool) or not isinstance(self.score, int):
            raise TypeError("score must be an int")
        if not 0 <= self.score <= 100:
            raise ValueError(f"score must be between 0 and 100, got {self.score}")
        if not isinstance(self.passed, bool):
            raise TypeError("passed must be a bool")
        if not isinstance(self.findings, tuple):
            raise TypeError("findings must be a tuple of strings")
        for finding in self.findings:
            _require_text("each finding", finding)
        if not self.passed and not self.findings:
            raise ValueError("a failed review must list at least one finding")
        _require_aware("reviewed_at", self.reviewed_at)

    def evidence(self) -> dict[str, Any]:
        """JSON-ready body for the evidence log (times in ISO 8601 with offset)."""
        return {
            "contact_id": self.contact_id,
            "reviewer": self.reviewer,
            "score": self.score,
            "passed": self.passed,
            "findings": list(self.findings),
            "reviewed_at": self.reviewed_at.isoformat(),
        }
