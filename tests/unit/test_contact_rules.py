"""The decision engine against the regulators' worked examples (Reg F commentary, CN rules),
plus a property: wherever the engine says "allowed from T", a contact at T is allowed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rulepacks.engine import (
    Attempt,
    Channel,
    DebtorState,
    DecisionRequest,
    Hold,
    Policy,
    decide,
)
from shared.rulepacks.windows import ContactWindow

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")


def at(zone: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone)


def request(
    when: datetime,
    channel: Channel = Channel.CALL,
    zones: tuple[str, ...] = ("America/New_York",),
    **kw: object,
) -> DecisionRequest:
    return DecisionRequest(
        debtor_id="p1",
        debt_id="d1",
        channel=channel,
        at=when,
        zones=zones,
        **kw,  # type: ignore[arg-type]
    )


def ids(decision: object) -> set[str]:
    return {o.rule_id for o in decision.objections}  # type: ignore[attr-defined]


def calls(
    *days: int, connected: bool = False, consented: bool = False, hour: int = 10
) -> tuple[Attempt, ...]:
    return tuple(
        Attempt(
            at=at(NY, 2026, 5, d, hour),
            channel=Channel.CALL,
            debt_id="d1",
            connected=connected,
            consented=consented,
        )
        for d in days
    )


US = ("us-federal",)


def test_the_eighth_call_in_seven_days_is_blocked_until_a_day_frees() -> None:
    history = calls(1, 2, 3, 4, 5, 6, 7)
    eighth = decide(request(at(NY, 2026, 5, 7, 15)), DebtorState(history=history), packs=US)
    assert not eighth.allowed
    assert ids(eighth) == {"US-7IN7"}
    # Days 2-8 hold six calls: the 8th may be placed on day 8, from 08:00 (US-HOURS).
    assert eighth.next_allowed_at == at(NY, 2026, 5, 8, 8)
    bunched = decide(
        request(at(NY, 2026, 5, 3, 15)), DebtorState(history=calls(*[1] * 7)), packs=US
    )
    assert bunched.next_allowed_at == at(NY, 2026, 5, 8, 8)  # day 8, once it is 08:00


def test_unconnected_calls_count_and_consented_calls_do_not() -> None:
    unconnected = decide(
        request(at(NY, 2026, 5, 7, 15)), DebtorState(history=calls(1, 2, 3, 4, 5, 6, 7)), packs=US
    )
    assert not unconnected.allowed
    consented = decide(
        request(at(NY, 2026, 5, 7, 15)),
        DebtorState(history=calls(1, 2, 3, 4, 5, 6, 7, consented=True)),
        packs=US,
    )
    assert consented.allowed


def test_no_call_within_seven_days_after_a_conversation() -> None:
    talk = (
        Attempt(
            at=at(NY, 2026, 5, 1, 10),
            channel=Channel.CALL,
            debt_id="d1",
            connected=True,
            conversation=True,
        ),
    )
    day7 = decide(request(at(NY, 2026, 5, 7, 12)), DebtorState(history=talk), packs=US)
    assert not day7.allowed
    assert ids(day7) == {"US-7IN7"}
    assert day7.next_allowed_at == at(NY, 2026, 5, 8, 8)
    day8 = decide(request(at(NY, 2026, 5, 8, 12)), DebtorState(history=talk), packs=US)
    assert day8.allowed
    other_debt = decide(
        DecisionRequest(
            debtor_id="p1",
            debt_id="d2",
            channel=Channel.CALL,
            at=at(NY, 2026, 5, 3, 12),
            zones=("America/New_York",),
        ),
        DebtorState(history=talk),
        packs=US,
    )
    assert other_debt.allowed  # the quiet period is per debt


def test_conflicting_zones_allow_only_hours_lawful_in_both() -> None:
    zones = ("America/New_York", "America/Los_Angeles")
    early = decide(request(at(NY, 2026, 5, 4, 8, 30), zones=zones), DebtorState(), packs=US)
    assert not early.allowed
    assert ids(early) == {"US-HOURS"}
    assert early.next_allowed_at == at(NY, 2026, 5, 4, 11)  # 08:00 in Los Angeles
    assert decide(request(at(NY, 2026, 5, 4, 20, 59), zones=zones), DebtorState(), packs=US).allowed
    late = decide(request(at(NY, 2026, 5, 4, 21), zones=zones), DebtorState(), packs=US)
    assert late.next_allowed_at == at(NY, 2026, 5, 5, 11)


def test_sms_is_judged_at_its_send_time() -> None:
    assert decide(request(at(NY, 2026, 5, 4, 20, 59), Channel.SMS), DebtorState(), packs=US).allowed
    assert not decide(request(at(NY, 2026, 5, 4, 21), Channel.SMS), DebtorState(), packs=US).allowed


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"), [(22, 0, False), (7, 59, False), (8, 0, True), (21, 59, True)]
)
def test_cn_hours(hour: int, minute: int, allowed: bool) -> None:
    decision = decide(
        request(at(SH, 2026, 5, 4, hour, minute), zones=("Asia/Shanghai",)), DebtorState()
    )
    assert decision.allowed is allowed
    if not allowed:
        assert ids(decision) == {"CN-HOURS"}
        assert decision.next_allowed_at is not None
        assert decision.next_allowed_at.astimezone(SH).time() == time(8, 0)


def test_dst_nights() -> None:
    spring = decide(request(at(NY, 2026, 3, 8, 7, 30)), DebtorState(), packs=US)
    assert spring.next_allowed_at == at(NY, 2026, 3, 8, 8)
    assert spring.next_allowed_at.astimezone(NY).utcoffset() == timedelta(hours=-4)
    fall = decide(request(at(NY, 2026, 11, 1, 1, 30)), DebtorState(), packs=US)
    assert fall.next_allowed_at == at(NY, 2026, 11, 1, 8)
    assert fall.next_allowed_at.astimezone(NY).utcoffset() == timedelta(hours=-5)


def test_cn_daily_caps_count_across_agencies() -> None:
    today = [
        Attempt(
            at=at(SH, 2026, 5, 4, h),
            channel=Channel.CALL,
            debt_id="d1",
            connected=True,
            agency=agency,
        )
        for h, agency in ((9, None), (10, "acme"), (11, "bravo"))
    ]
    decision = decide(
        request(at(SH, 2026, 5, 4, 15), zones=("Asia/Shanghai",)), DebtorState(history=today)
    )
    assert ids(decision) == {"CN-CALLS-DAY"}
    assert decision.next_allowed_at == at(SH, 2026, 5, 5, 8)
    unanswered = [Attempt(at=a.at, channel=a.channel, debt_id="d1") for a in today]
    assert decide(
        request(at(SH, 2026, 5, 4, 15), zones=("Asia/Shanghai",)), DebtorState(history=unanswered)
    ).allowed  # the cap counts connected calls
    sms = [Attempt(at=at(SH, 2026, 5, 4, 9), channel=Channel.SMS, debt_id="d1")]
    second = decide(
        request(at(SH, 2026, 5, 4, 15), Channel.SMS, zones=("Asia/Shanghai",)),
        DebtorState(history=sms),
    )
    assert ids(second) == {"CN-SMS-DAY"}


def test_holds_opt_outs_and_consent_list_every_objection() -> None:
    state = DebtorState(
        holds=frozenset({Hold.DISPUTE, Hold.COMPLAINT}), opted_out=frozenset({Channel.CALL})
    )
    decision = decide(request(at(NY, 2026, 5, 4, 22)), state, packs=US)
    assert ids(decision) == {"US-DISPUTE", "HOLD-COMPLAINT", "US-CHANNEL-OPTOUT", "US-HOURS"}
    assert decision.next_allowed_at is None  # time alone does not lift a hold
    agency = decide(
        request(at(SH, 2026, 5, 4, 10), zones=("Asia/Shanghai",), agency="acme"), DebtorState()
    )
    assert ids(agency) == {"CN-CONSENT-23"}
    assert decide(
        request(at(SH, 2026, 5, 4, 10), zones=("Asia/Shanghai",), agency="acme"),
        DebtorState(consents=frozenset({"agency:acme"})),
    ).allowed
    third = decide(
        request(at(SH, 2026, 5, 4, 10), zones=("Asia/Shanghai",), third_party=True), DebtorState()
    )
    assert ids(third) == {"CN-THIRD-PARTY"}


def test_massachusetts_two_in_seven() -> None:
    history = (
        Attempt(at=at(NY, 2026, 5, 1, 10), channel=Channel.CALL, debt_id="d1"),
        Attempt(at=at(NY, 2026, 5, 3, 10), channel=Channel.SMS, debt_id="d1"),
    )
    decision = decide(
        request(at(NY, 2026, 5, 5, 10), Channel.SMS),
        DebtorState(history=history),
        packs=("us-federal", "us-ma"),
    )
    assert ids(decision) == {"MA-2IN7"}
    assert decision.next_allowed_at == at(NY, 2026, 5, 8, 8)


def test_local_policy_only_tightens() -> None:
    narrower = Policy(window=ContactWindow(start=time(9), end=time(20), rule_id="POLICY"))
    early = decide(
        request(at(SH, 2026, 5, 4, 8, 30), zones=("Asia/Shanghai",)), DebtorState(), policy=narrower
    )
    assert early.next_allowed_at == at(SH, 2026, 5, 4, 9)
    looser = Policy(window=ContactWindow(start=time(6), end=time(23, 30), rule_id="POLICY"))
    assert not decide(
        request(at(SH, 2026, 5, 4, 22, 30), zones=("Asia/Shanghai",)), DebtorState(), policy=looser
    ).allowed
    loose_cap = Policy(caps={"CN-SMS-DAY": 5})
    sms = DebtorState(
        history=(Attempt(at=at(SH, 2026, 5, 4, 9), channel=Channel.SMS, debt_id="d1"),)
    )
    assert not decide(
        request(at(SH, 2026, 5, 4, 15), Channel.SMS, zones=("Asia/Shanghai",)),
        sms,
        policy=loose_cap,
    ).allowed


def test_meal_times_holidays_and_minimum_gap() -> None:
    policy = Policy(
        quiet=((time(12), time(13, 30)),),
        holidays=frozenset({date(2026, 10, 1)}),
        min_gap=timedelta(minutes=30),
    )
    lunch = decide(
        request(at(SH, 2026, 5, 4, 12, 15), zones=("Asia/Shanghai",)), DebtorState(), policy=policy
    )
    assert ids(lunch) == {"POLICY-QUIET"}
    assert lunch.next_allowed_at == at(SH, 2026, 5, 4, 13, 30)
    holiday = decide(
        request(at(SH, 2026, 10, 1, 10), zones=("Asia/Shanghai",)), DebtorState(), policy=policy
    )
    assert ids(holiday) == {"POLICY-HOLIDAY"}
    assert holiday.next_allowed_at == at(SH, 2026, 10, 2, 8)
    recent = DebtorState(
        history=(Attempt(at=at(SH, 2026, 5, 4, 10), channel=Channel.SMS, debt_id="d1"),)
    )
    gap = decide(
        request(at(SH, 2026, 5, 4, 10, 10), zones=("Asia/Shanghai",)), recent, policy=policy
    )
    assert ids(gap) == {"US-BUNCHING"}
    assert gap.next_allowed_at == at(SH, 2026, 5, 4, 10, 30)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(request(datetime(2026, 5, 4, 10)), DebtorState())
    with pytest.raises(ValueError, match="zone"):
        decide(request(at(NY, 2026, 5, 4, 10), zones=()), DebtorState())


ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
]
PACK_SETS = [("cn",), ("us-federal",), ("us-federal", "us-ma"), ("uk",)]


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    channel=st.sampled_from([Channel.CALL, Channel.SMS]),
    packs=st.sampled_from(PACK_SETS),
    offsets=st.lists(st.integers(min_value=-10 * 24 * 60, max_value=0), max_size=12),
    flags=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=12, max_size=12
    ),
)
def test_the_next_allowed_moment_is_allowed(
    moment: datetime,
    zones: list[str],
    channel: Channel,
    packs: tuple[str, ...],
    offsets: list[int],
    flags: list[tuple[bool, bool, bool]],
) -> None:
    history = tuple(
        Attempt(
            at=moment + timedelta(minutes=o),
            channel=Channel.CALL if f[0] else Channel.SMS,
            debt_id="d1",
            connected=f[1],
            conversation=f[1] and f[2],
        )
        for o, f in zip(offsets, flags, strict=False)
    )
    state = DebtorState(history=history)
    req = DecisionRequest(
        debtor_id="p", debt_id="d1", channel=channel, at=moment, zones=tuple(zones)
    )
    decision = decide(req, state, packs=packs, policy=Policy(min_gap=timedelta(minutes=20)))
    if decision.next_allowed_at is None:
        assert not decision.allowed
        return
    assert decision.next_allowed_at >= moment
    later = DecisionRequest(
        debtor_id="p",
        debt_id="d1",
        channel=channel,
        at=decision.next_allowed_at,
        zones=tuple(zones),
    )
    again = decide(later, state, packs=packs, policy=Policy(min_gap=timedelta(minutes=20)))
    assert again.allowed, (decision, again)


def test_no_contact_at_work_once_the_debtor_says_so_us_workplace() -> None:
    told = DebtorState(no_workplace=True)
    at_work = decide(request(at(NY, 2026, 5, 4, 10), workplace=True), told, packs=US)
    assert ids(at_work) == {"US-WORKPLACE"}
    assert at_work.next_allowed_at is None  # time does not lift it
    assert decide(request(at(NY, 2026, 5, 4, 10)), told, packs=US).allowed  # at home: fine
    assert decide(request(at(NY, 2026, 5, 4, 10), workplace=True), DebtorState(), packs=US).allowed
