"""Forbidden-hours slotting (CN-HOURS 22:00-08:00, US-HOURS 21:00-08:00) across zones and DST,
and the first contact by DPD stage."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.contact.domain import first_contact_for
from shared.rulepacks.windows import (
    CN_WINDOW,
    US_WINDOW,
    Channel,
    ContactWindow,
    is_allowed_at,
    next_allowed_slot,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *wall: int, fold: int = 0) -> datetime:
    """An aware datetime from (year, month, day, hour, minute[, second]) wall-clock parts."""
    year, month, day, hour, minute, *rest = wall
    second = rest[0] if rest else 0
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold)


@pytest.mark.parametrize(
    ("wall", "allowed"),
    [
        ((2026, 5, 1, 22, 0), False),
        ((2026, 5, 1, 21, 59, 59), True),
        ((2026, 5, 1, 7, 59), False),
        ((2026, 5, 1, 7, 59, 59), False),
        ((2026, 5, 1, 8, 0), True),
        ((2026, 5, 1, 0, 0), False),
        ((2026, 5, 1, 12, 0), True),
    ],
)
def test_cn_window_edges(wall: tuple[int, ...], allowed: bool) -> None:
    instant = local(SHANGHAI, *wall)
    assert is_allowed_at(instant=instant, zone=SHANGHAI, window=CN_WINDOW) is allowed


def test_us_window_ends_at_nine() -> None:
    assert not is_allowed_at(
        instant=local(NEW_YORK, 2026, 5, 1, 21, 0), zone=NEW_YORK, window=US_WINDOW
    )
    assert is_allowed_at(
        instant=local(NEW_YORK, 2026, 5, 1, 20, 59), zone=NEW_YORK, window=US_WINDOW
    )


@pytest.mark.parametrize(
    ("earliest", "expected_local"),
    [
        (local(SHANGHAI, 2026, 5, 1, 23, 30), datetime(2026, 5, 2, 8, 0)),
        (local(SHANGHAI, 2026, 5, 1, 3, 0), datetime(2026, 5, 1, 8, 0)),
        (local(SHANGHAI, 2026, 5, 1, 22, 0), datetime(2026, 5, 2, 8, 0)),
        # 23:00 UTC on 31 January is 07:00 on 1 February in Shanghai.
        (datetime(2026, 1, 31, 23, 0, tzinfo=UTC), datetime(2026, 2, 1, 8, 0)),
        # Year end.
        (local(SHANGHAI, 2026, 12, 31, 23, 59), datetime(2027, 1, 1, 8, 0)),
    ],
)
def test_forbidden_times_move_to_the_next_eight_o_clock(
    earliest: datetime, expected_local: datetime
) -> None:
    slot = next_allowed_slot(earliest=earliest, zone=SHANGHAI, window=CN_WINDOW)
    assert slot.tzinfo is UTC
    assert slot.astimezone(SHANGHAI).replace(tzinfo=None) == expected_local


def test_an_allowed_moment_is_kept() -> None:
    earliest = local(SHANGHAI, 2026, 5, 1, 14, 7, 3)
    assert next_allowed_slot(earliest=earliest, zone=SHANGHAI, window=CN_WINDOW) == earliest


@pytest.mark.parametrize(
    ("earliest", "offset_hours"),
    [
        (local(NEW_YORK, 2026, 3, 8, 1, 30), -4),  # spring-forward night: 08:00 is EDT
        (local(NEW_YORK, 2026, 3, 7, 23, 0), -4),  # the evening before, in EST: lands in EDT
        (local(NEW_YORK, 2026, 11, 1, 1, 30), -5),  # fall-back night: 08:00 is EST
        (local(NEW_YORK, 2026, 10, 31, 23, 0), -5),
    ],
)
def test_dst_nights_land_on_eight_local(earliest: datetime, offset_hours: int) -> None:
    slot = next_allowed_slot(earliest=earliest, zone=NEW_YORK, window=US_WINDOW)
    wall = slot.astimezone(NEW_YORK)
    assert wall.time() == time(8, 0)
    assert wall.utcoffset() == timedelta(hours=offset_hours)
    assert slot - earliest <= timedelta(hours=10)


def test_start_inside_a_spring_forward_gap_uses_the_first_existing_instant() -> None:
    # 02:30 does not exist in New York on 2026-03-08 (02:00 jumps to 03:00).
    window = ContactWindow(start=time(2, 30), end=time(20, 0), rule_id="TEST")
    slot = next_allowed_slot(
        earliest=local(NEW_YORK, 2026, 3, 8, 0, 30), zone=NEW_YORK, window=window
    )
    assert slot.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 0)
    assert is_allowed_at(instant=slot, zone=NEW_YORK, window=window)


def test_start_inside_a_fall_back_fold_picks_the_right_one() -> None:
    # 01:30 happens twice in New York on 2026-11-01 (EDT, then EST).
    window = ContactWindow(start=time(1, 30), end=time(20, 0), rule_id="TEST")
    first = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0).astimezone(UTC)
    second = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1).astimezone(UTC)
    assert second - first == timedelta(hours=1)
    before_both = next_allowed_slot(
        earliest=local(NEW_YORK, 2026, 11, 1, 0, 45), zone=NEW_YORK, window=window
    )
    assert before_both == first


@pytest.mark.parametrize(
    "zone_name",
    [
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    ],
)
def test_odd_offsets(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    earliest = datetime(2026, 10, 4, 12, 0, tzinfo=UTC)
    for hours in range(0, 48, 5):
        start = earliest + timedelta(hours=hours)
        slot = next_allowed_slot(earliest=start, zone=zone, window=CN_WINDOW)
        assert is_allowed_at(instant=slot, zone=zone, window=CN_WINDOW)
        assert slot >= start


ZONES = [
    "Asia/Shanghai",
    "Asia/Urumqi",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Pacific/Chatham",
    "America/New_York",
    "America/Santiago",
    "America/St_Johns",
    "Europe/London",
    "Europe/Dublin",
    "Africa/Casablanca",
    "UTC",
]


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("window", [CN_WINDOW, US_WINDOW], ids=["cn", "us"])
def test_the_slot_is_the_first_allowed_instant(zone_name: str, window: ContactWindow) -> None:
    """Over a year of start times: never early, always allowed, nothing allowed skipped."""
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(hours=7, minutes=13)
    earliest = start
    while earliest < start + timedelta(days=366):
        slot = next_allowed_slot(earliest=earliest, zone=zone, window=window)
        assert slot >= earliest
        assert is_allowed_at(instant=slot, zone=zone, window=window)
        if slot != earliest:
            assert not is_allowed_at(instant=earliest, zone=zone, window=window)
            probe = max(earliest, slot - timedelta(hours=3))
            while probe < slot:
                assert not is_allowed_at(instant=probe, zone=zone, window=window), (earliest, probe)
                probe += timedelta(minutes=1)
        earliest += step


def test_naive_times_and_empty_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_allowed_at(instant=datetime(2026, 1, 1, 9), zone=SHANGHAI, window=CN_WINDOW)
    with pytest.raises(ValueError, match="aware"):
        next_allowed_slot(earliest=datetime(2026, 1, 1, 9), zone=SHANGHAI, window=CN_WINDOW)
    with pytest.raises(ValueError, match="before"):
        ContactWindow(start=time(22, 0), end=time(8, 0))


@pytest.mark.parametrize(
    ("dpd", "channel", "stage"),
    [
        (0, Channel.SMS, "reminder"),
        (7, Channel.SMS, "reminder"),
        (8, Channel.CALL, "early"),
        (15, Channel.CALL, "early"),
        (16, Channel.CALL, "early"),
        (30, Channel.CALL, "early"),
        (31, Channel.CALL, "late"),
        (60, Channel.CALL, "late"),
        (61, Channel.LETTER, "legal_review"),
    ],
)
def test_first_contact_by_stage(dpd: int, channel: Channel, stage: str) -> None:
    first = first_contact_for(days_past_due=dpd)
    assert (first.channel, first.stage) == (channel, stage)


def test_negative_dpd_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        first_contact_for(days_past_due=-1)


def test_contact_follows_the_treatment_and_a_human_takes_escalated_cases() -> None:
    from services.contact.domain import contact_for

    assert (
        contact_for(treatment="settlement_offer", days_past_due=40).template == "settlement_offer"
    )
    assert contact_for(treatment="field_visit", days_past_due=40).channel is Channel.VISIT
    assert contact_for(treatment=None, days_past_due=3).channel is Channel.SMS
    assert contact_for(treatment="unknown", days_past_due=70).channel is Channel.LETTER
    human = contact_for(treatment="sms_reminder", days_past_due=3, human_only=True)
    assert (human.channel, human.template) == (Channel.CALL, "human_follow_up")


def test_best_slot_prefers_answering_hours_and_learns() -> None:
    from services.contact.domain import answer_rate, best_slot

    zone = ZoneInfo("Asia/Shanghai")
    candidates = [datetime(2026, 5, 4, h, 0, tzinfo=zone) for h in range(8, 22)]
    # Before any outcome: 10:00 beats 08:00 (twice the prior rate for two hours' wait).
    assert best_slot(candidates=candidates, zone=zone, channel=Channel.CALL, stats={}).hour == 10
    # This segment answers in the evening: the planner follows the data.
    learned = {20: (200, 150), 10: (200, 10)}
    assert (
        best_slot(candidates=candidates, zone=zone, channel=Channel.CALL, stats=learned).hour == 20
    )
    assert answer_rate(channel=Channel.CALL, hour=20, attempts=200, connected=150) > 0.6
    assert (
        best_slot(candidates=candidates[:1], zone=zone, channel=Channel.SMS, stats={})
        == candidates[0]
    )
    with pytest.raises(ValueError, match="no candidate"):
        best_slot(candidates=[], zone=zone, channel=Channel.CALL, stats={})


def test_layered_answer_rates_pool_zone_segment_and_debtor() -> None:
    from services.contact.domain import answer_rate, best_slot, layered_answer_rate

    zone = ZoneInfo("Asia/Shanghai")
    candidates = [datetime(2026, 5, 4, h, 0, tzinfo=zone) for h in range(8, 22)]
    no_data = layered_answer_rate(channel=Channel.CALL, hour=20, levels=[{}, {}, {}])
    assert no_data == answer_rate(channel=Channel.CALL, hour=20, attempts=0, connected=0)
    # One level equals the single-segment posterior.
    one = layered_answer_rate(channel=Channel.CALL, hour=20, levels=[{20: (40, 30)}])
    assert one == answer_rate(channel=Channel.CALL, hour=20, attempts=40, connected=30)
    # The zone answers at 10:00; this debtor's segment leans to the evening but thinly; the
    # debtor answered every evening call and no morning one: their own outcomes decide, even
    # against twelve hours' wait.
    zone_level = {10: (400, 160), 20: (400, 120)}
    segment = {20: (10, 6)}
    own = {20: (12, 12), 10: (10, 0)}
    assert (
        best_slot(candidates=candidates, zone=zone, channel=Channel.CALL, levels=[zone_level]).hour
        == 10
    )
    assert (
        best_slot(
            candidates=candidates,
            zone=zone,
            channel=Channel.CALL,
            levels=[zone_level, segment, own],
        ).hour
        == 20
    )
    # Shrinkage: a debtor with one answered call does not outweigh a segment of hundreds.
    sparse = layered_answer_rate(
        channel=Channel.CALL, hour=12, levels=[{12: (500, 25)}, {}, {12: (1, 1)}]
    )
    assert sparse < 0.15


def test_dpd_buckets() -> None:
    from services.contact.domain import dpd_bucket

    assert [dpd_bucket(d) for d in (None, 0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        "M0",
        "M0",
        "M1",
        "M1",
        "M2",
        "M2",
        "M3",
        "M3",
        "M4",
        "M4",
    ]


def test_fallback_contacts_skip_opted_out_and_automated_for_humans() -> None:
    from services.contact.domain import FirstContact, fallback_contacts

    call = FirstContact(Channel.CALL, "collection_call", "early")
    assert [c.channel for c in fallback_contacts(call, opted_out=frozenset({Channel.CALL}))] == [
        Channel.SMS,
        Channel.EMAIL,
        Channel.LETTER,
    ]
    only_letter = fallback_contacts(
        call, opted_out=frozenset({Channel.CALL, Channel.SMS, Channel.EMAIL})
    )
    assert [(c.channel, c.template, c.stage) for c in only_letter] == [
        (Channel.LETTER, "payment_reminder_letter", "early")
    ]
    human = fallback_contacts(call, opted_out=frozenset({Channel.CALL}), human_only=True)
    assert [c.channel for c in human] == [Channel.LETTER]
    visit = FirstContact(Channel.VISIT, "field_visit", "late")
    assert Channel.VISIT not in {
        c.channel
        for first in (call, visit)
        for c in fallback_contacts(first, opted_out=frozenset({first.channel}))
    }
