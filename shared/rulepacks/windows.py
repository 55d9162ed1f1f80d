"""Lawful local-time windows: the time arithmetic every rule pack shares (DST gaps and folds
included). Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_QUARTER_HOUR = 900
_CACHE_LIMIT = 100_000


def _second_of(moment: time) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


@dataclass(frozen=True)
class ContactWindow:
    """Contact is allowed when the debtor's local wall time t satisfies start <= t < end."""

    start: time = time(8, 0)
    end: time = time(22, 0)
    rule_id: str = "CN-HOURS"
    start_second: float = field(init=False, repr=False, compare=False)
    end_second: float = field(init=False, repr=False, compare=False)
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("window start must be before its end")
        # Seconds of the local day, so a check is two float comparisons (decisions are hot).
        object.__setattr__(self, "start_second", _second_of(self.start))
        object.__setattr__(self, "end_second", _second_of(self.end))
        object.__setattr__(self, "label", f"{self.start:%H:%M}-{self.end:%H:%M}")


class LocalClock:
    """Local wall time in one zone from a POSIX timestamp, with UTC offsets cached per quarter
    hour of UTC.

    `astimezone` costs about a microsecond and a decision needs one per past attempt; the
    cache answers in a dict lookup. It is exact: a quarter hour is cached only when the offset
    at its first and last second agree, and tzdata transitions fall on whole seconds and never
    two within fifteen minutes. A quarter hour holding a transition is computed every time."""

    __slots__ = ("_day_starts", "_offsets", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[int, int] = {}
        self._day_starts: dict[int, datetime] = {}

    def offset(self, timestamp: float) -> int:
        """The zone's UTC offset in seconds at `timestamp`."""
        bucket = int(timestamp // _QUARTER_HOUR)
        cached = self._offsets.get(bucket)
        if cached is not None:
            return cached
        first = self._offset_at(bucket * _QUARTER_HOUR)
        if first != self._offset_at(bucket * _QUARTER_HOUR + _QUARTER_HOUR - 1):
            return self._offset_at(timestamp)
        if len(self._offsets) >= _CACHE_LIMIT:
            self._offsets.clear()
        self._offsets[bucket] = first
        return first

    def _offset_at(self, timestamp: float) -> int:
        offset = datetime.fromtimestamp(timestamp, self.zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return int(offset.total_seconds())

    def day(self, timestamp: float) -> int:
        """The proleptic Gregorian ordinal of the local date (`date.toordinal`)."""
        return int((timestamp + self.offset(timestamp)) // 86400) + EPOCH_ORDINAL

    def days(self, timestamps: Iterable[float]) -> tuple[int, ...]:
        """`day` of many timestamps (a debtor's history), with the lookups inlined."""
        cached = self._offsets.get
        found = []
        for timestamp in timestamps:
            offset = cached(int(timestamp // _QUARTER_HOUR))
            if offset is None:
                offset = self.offset(timestamp)
            found.append(int((timestamp + offset) // 86400) + EPOCH_ORDINAL)
        return tuple(found)

    def day_start(self, day: int) -> datetime:
        """The first instant of local day `day` (its midnight, or the end of a DST gap that
        swallowed midnight), in UTC."""
        known = self._day_starts.get(day)
        if known is None:
            if len(self._day_starts) >= _CACHE_LIMIT:
                self._day_starts.clear()
            known = self._day_starts[day] = self._find_day_start(day)
        return known

    def _find_day_start(self, day: int) -> datetime:
        midnight_as_utc = (day - EPOCH_ORDINAL) * 86400
        # The offset in force at local midnight, found from the offset at UTC midnight.
        start = midnight_as_utc - self.offset(midnight_as_utc - self.offset(midnight_as_utc))
        if self.day(start) == day and self.day(start - 1) == day - 1:
            return datetime.fromtimestamp(start, UTC)
        return start_of_local_day(day, self.zone)  # pragma: no cover - midnight in a DST gap

    def second_of_day(self, timestamp: float) -> float:
        """Seconds since local midnight on the local wall clock."""
        return (timestamp + self.offset(timestamp)) % 86400


_CLOCKS: dict[ZoneInfo, LocalClock] = {}


def clock_for(zone: ZoneInfo) -> LocalClock:
    """The shared clock of a zone (its offset cache lives as long as the process)."""
    clock = _CLOCKS.get(zone)
    if clock is None:
        clock = _CLOCKS[zone] = LocalClock(zone)
    return clock


def start_of_local_day(day: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of local midnight that starts the day with ordinal `day`."""
    return datetime.combine(date.fromordinal(day), time(0), tzinfo=zone).astimezone(UTC)


CN_WINDOW = ContactWindow()
US_WINDOW = ContactWindow(end=time(21, 0), rule_id="US-HOURS")


def is_allowed_at(*, instant: datetime, zone: ZoneInfo, window: ContactWindow) -> bool:
    """True if `instant` falls inside the window in the debtor's zone."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    second = clock_for(zone).second_of_day(instant.timestamp())
    return window.start_second <= second < window.end_second


def next_allowed_slot(*, earliest: datetime, zone: ZoneInfo, window: ContactWindow) -> datetime:
    """The first instant >= earliest inside the window, in UTC (DST gaps and folds included)."""
    if earliest.tzinfo is None:
        raise ValueError("earliest must be timezone-aware")
    if is_allowed_at(instant=earliest, zone=zone, window=window):
        return earliest.astimezone(UTC)
    quick = next_window_start(earliest, zone, window)
    if quick is not None:
        return quick
    local_day = earliest.astimezone(zone).date()
    for day_offset in range(0, 3):
        day = local_day + timedelta(days=day_offset)
        candidates = []
        for fold in (0, 1):
            wall = datetime.combine(day, window.start, tzinfo=zone).replace(fold=fold)
            instant = wall.astimezone(UTC)
            # A wall time inside a spring-forward gap does not exist: take the first allowed
            # instant after the jump instead.
            if instant.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                instant = _first_allowed_after(instant - timedelta(hours=3), zone, window)
            candidates.append(instant)
        for instant in sorted(candidates):
            if instant >= earliest and is_allowed_at(instant=instant, zone=zone, window=window):
                return instant
    raise ValueError("no allowed slot within three days")  # pragma: no cover - window non-empty


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def next_window_start(earliest: datetime, zone: ZoneInfo, window: ContactWindow) -> datetime | None:
    """For an `earliest` outside the window: the next local window start when the zone's
    offset is the same then as now (no DST change in between: tzdata never changes twice
    within a day), else None. Exact to the microsecond, never a hair before the start."""
    clock = clock_for(zone)
    timestamp = earliest.timestamp()
    offset = clock.offset(timestamp)
    start = window.start
    if earliest.microsecond == 0 and start.microsecond == 0:
        # Whole seconds (the usual case): the timestamp is an exact integer.
        seconds = int(timestamp)
        local = (seconds + offset) % 86400
        start_s = (start.hour * 60 + start.minute) * 60 + start.second
        target_s = seconds + (start_s - local if local < start_s else 86400 - local + start_s)
        if clock.offset(target_s) != offset:
            return None
        return datetime.fromtimestamp(target_s, UTC)
    utc = earliest.astimezone(UTC)
    local_us = ((utc - _EPOCH) // _MICROSECOND + offset * 1_000_000) % _DAY_US
    start_us = ((start.hour * 60 + start.minute) * 60 + start.second) * 1_000_000
    start_us += start.microsecond
    wait = start_us - local_us if local_us < start_us else _DAY_US - local_us + start_us
    target = utc + timedelta(microseconds=wait)
    if clock.offset(target.timestamp()) != offset:
        return None
    return target


def _first_allowed_after(start: datetime, zone: ZoneInfo, window: ContactWindow) -> datetime:
    instant = start.replace(second=0, microsecond=0)
    for _ in range(6 * 60):
        if is_allowed_at(instant=instant, zone=zone, window=window):
            return instant
        instant += timedelta(minutes=1)
    return instant


class Channel(StrEnum):
    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"
    VISIT = "visit"
