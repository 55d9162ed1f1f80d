"""The cached local clock must agree with `astimezone` everywhere: DST nights, half-hour and
45-minute offsets, zones whose clocks jump at midnight, and odd historical offsets."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rulepacks.windows import (
    ContactWindow,
    LocalClock,
    is_allowed_at,
    next_allowed_slot,
    next_window_start,
    start_of_local_day,
)

ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
    "Asia/Kathmandu",  # +05:45
    "America/Havana",  # DST starts at midnight: some local days have no 00:00
    "America/Santiago",
    "Pacific/Apia",  # skipped a whole day in 2011
    "Africa/Casablanca",  # DST suspended for Ramadan, several jumps a year
]
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(zone_name=st.sampled_from(ZONES), instant=instants)
def test_clock_agrees_with_astimezone(zone_name: str, instant: datetime) -> None:
    zone = ZoneInfo(zone_name)
    clock = LocalClock(zone)
    local = instant.astimezone(zone)
    timestamp = instant.timestamp()
    assert clock.day(timestamp) == local.date().toordinal()
    wall = local.replace(tzinfo=None)
    midnight = datetime.combine(wall.date(), time(0))
    assert abs(clock.second_of_day(timestamp) - (wall - midnight).total_seconds()) < 1e-6
    # asked twice: the second answer comes from the cache and must not differ
    assert clock.day(timestamp) == local.date().toordinal()


@settings(max_examples=200, deadline=None)
@given(zone_name=st.sampled_from(ZONES), instant=instants)
def test_day_start_is_the_first_instant_of_the_local_day(zone_name: str, instant: datetime) -> None:
    zone = ZoneInfo(zone_name)
    clock = LocalClock(zone)
    day = instant.astimezone(zone).date().toordinal()
    start = clock.day_start(day)
    assert start.astimezone(zone).date().toordinal() == day
    assert (start - timedelta(microseconds=1)).astimezone(zone).date().toordinal() == day - 1
    assert start <= instant


def test_day_start_where_midnight_does_not_exist() -> None:
    # Havana sprang forward at 00:00 on 2024-03-10: the day began at 01:00 local time.
    zone = ZoneInfo("America/Havana")
    day = datetime(2024, 3, 10).toordinal()
    start = LocalClock(zone).day_start(day)
    assert start.astimezone(zone).replace(tzinfo=None) == datetime(2024, 3, 10, 1, 0)
    assert start == start_of_local_day(day, zone)


def test_quarter_hour_with_a_transition_is_not_cached_wrongly() -> None:
    zone = ZoneInfo("America/New_York")
    clock = LocalClock(zone)
    jump = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
    before, after = jump - timedelta(seconds=1), jump
    assert clock.offset(before.timestamp()) == -5 * 3600
    assert clock.offset(after.timestamp()) == -4 * 3600
    assert clock.offset(before.timestamp()) == -5 * 3600


WINDOW = ContactWindow(start=time(8), end=time(21), rule_id="US-HOURS")


@settings(max_examples=300, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    instant=instants,
    start_minute=st.integers(min_value=0, max_value=12 * 60),
)
def test_next_window_start_is_the_first_allowed_instant(
    zone_name: str, instant: datetime, start_minute: int
) -> None:
    zone = ZoneInfo(zone_name)
    window = ContactWindow(
        start=time(start_minute // 60, start_minute % 60), end=time(21), rule_id="X"
    )
    if is_allowed_at(instant=instant, zone=zone, window=window):
        return
    quick = next_window_start(instant, zone, window)
    exact = next_allowed_slot(earliest=instant, zone=zone, window=window)
    if quick is not None:  # None only across a DST change: the caller takes the exact path
        assert quick == exact
    assert is_allowed_at(instant=exact, zone=zone, window=window)
    assert not is_allowed_at(instant=exact - timedelta(microseconds=1), zone=zone, window=window)


def test_transition_inside_a_quarter_hour() -> None:
    # Monrovia left its -00:44:30 offset at 00:44:30 UTC on 1972-01-07: mid-quarter-hour. A
    # cache that trusted the quarter hour's first second would keep the old offset after it.
    zone = ZoneInfo("Africa/Monrovia")
    clock = LocalClock(zone)
    early = datetime(1972, 1, 7, 0, 30, tzinfo=UTC)
    before = datetime(1972, 1, 7, 0, 44, 29, tzinfo=UTC)
    after = datetime(1972, 1, 7, 0, 44, 30, tzinfo=UTC)
    assert clock.offset(early.timestamp()) == -(44 * 60 + 30)
    assert clock.offset(after.timestamp()) == 0
    assert clock.offset(before.timestamp()) == -(44 * 60 + 30)
    assert clock.day(after.timestamp()) == after.date().toordinal()
