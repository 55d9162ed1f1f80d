"""Pure case rules in services.cases.domain: days past due and buckets, stages, payment
allocation, arrears dates, promises and plans, settlements, approval limits and allocation to
collectors. Worked examples with the amounts written out, plus a few hypothesis properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.cases.domain import (
    CURRENT,
    DEFAULT_BUCKETS,
    DEFAULT_ROLE_LIMITS,
    MANUAL_STAGES,
    Allocation,
    Balance,
    CollectorLoad,
    Installment,
    PromiseStatus,
    Settlement,
    Stage,
    add_months,
    allocate_payment,
    approval_problem,
    arrears_due_date,
    build_schedule,
    choose_collector,
    days_past_due,
    dpd_bucket,
    due_date_range,
    evaluate_schedule,
    parse_buckets,
    parse_plan_shape,
    settlement_offer,
    skill_for,
    stage_for,
)

D = Decimal
#: No example database on disk: these tests do no I/O and leave nothing behind.
PROPERTY = settings(max_examples=200, deadline=None, database=None)
DEFAULT_SPEC = "1-7,8-15,16-30,31-60,61-90,91-180,181+"

dates = st.dates(min_value=date(1901, 1, 1), max_value=date(2199, 12, 31))


def cents(low: int = 0, high: int = 10**9) -> st.SearchStrategy[Decimal]:
    """Amounts with exactly two decimals, e.g. Decimal("12.34")."""
    return st.integers(min_value=low, max_value=high).map(lambda n: D(n).scaleb(-2))


def ranges(buckets: tuple[tuple[str, int, int | None], ...]) -> list[tuple[int, int | None]]:
    return [(low, high) for _, low, high in buckets]


# --- days past due and buckets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "today", "dpd"),
    [
        (date(2026, 1, 31), date(2026, 3, 1), 29),  # across a short February
        (date(2024, 2, 28), date(2024, 3, 1), 2),  # leap year
        (date(2025, 12, 31), date(2026, 1, 1), 1),  # year end
        (date(2026, 5, 1), date(2026, 5, 1), 0),  # due today
        (date(2026, 5, 2), date(2026, 5, 1), 0),  # not yet due
    ],
)
def test_days_past_due(due: date, today: date, dpd: int) -> None:
    assert days_past_due(due_date=due, today=today) == dpd


@pytest.mark.parametrize(
    ("due", "today", "dpd"),
    [
        (date(2024, 1, 31), date(2024, 2, 29), 29),  # month end into a leap-day February
        (date(2023, 2, 28), date(2023, 3, 1), 1),  # 2023 is not leap
        (date(2024, 2, 29), date(2025, 2, 28), 365),  # from a leap day to the next year
        (date(2024, 2, 28), date(2025, 2, 28), 366),  # a year that contains Feb 29
        (date(2100, 2, 28), date(2100, 3, 1), 1),  # 2100 is not leap (divisible by 100)
        (date(2000, 2, 28), date(2000, 3, 1), 2),  # 2000 is leap (divisible by 400)
        (date(2096, 2, 28), date(2096, 3, 1), 2),  # 2096 is leap
        (date(2026, 4, 30), date(2026, 5, 31), 31),  # 30-day month
        (date(2026, 1, 1), date(2026, 12, 31), 364),
        (date(2026, 3, 1), date(2026, 1, 1), 0),  # two months early is still 0, not negative
    ],
)
def test_days_past_due_across_month_ends_and_leap_years(due: date, today: date, dpd: int) -> None:
    assert days_past_due(due_date=due, today=today) == dpd


@PROPERTY
@given(due=dates, today=dates)
def test_days_past_due_is_the_calendar_distance_clamped_at_zero(due: date, today: date) -> None:
    dpd = days_past_due(due_date=due, today=today)
    assert dpd == max(0, today.toordinal() - due.toordinal())
    if dpd > 0:
        assert due + timedelta(days=dpd) == today


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, "current"),
        (1, "1-7"),
        (7, "1-7"),
        (8, "8-15"),
        (30, "16-30"),
        (31, "31-60"),
        (180, "91-180"),
        (181, "180+"),
        (5000, "180+"),
    ],
)
def test_buckets(days: int, bucket: str) -> None:
    assert dpd_bucket(days=days) == bucket


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, "current"),
        (1, "1-7"),
        (7, "1-7"),
        (8, "8-15"),
        (15, "8-15"),
        (16, "16-30"),
        (30, "16-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "91-180"),
        (180, "91-180"),
        (181, "180+"),
        (365, "180+"),
        (100_000, "180+"),
    ],
)
def test_every_default_bucket_boundary(days: int, bucket: str) -> None:
    assert dpd_bucket(days=days) == bucket


def test_current_is_the_name_of_zero_days() -> None:
    assert CURRENT == "current"
    assert dpd_bucket(days=0) == CURRENT


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        dpd_bucket(days=-1)


@pytest.mark.parametrize("days", [-1, -30, -100_000])
def test_any_negative_days_are_refused(days: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        dpd_bucket(days=days)


@pytest.mark.parametrize(
    ("due", "today", "bucket"),
    [
        (date(2024, 1, 31), date(2024, 2, 29), "16-30"),  # 29 days
        (date(2023, 2, 28), date(2023, 3, 1), "1-7"),  # 1 day
        (date(2024, 2, 29), date(2025, 2, 28), "180+"),  # 365 days
        (date(2026, 1, 31), date(2026, 3, 2), "16-30"),  # 30 days
        (date(2026, 1, 31), date(2026, 3, 3), "31-60"),  # 31 days
        (date(2026, 3, 1), date(2026, 3, 1), "current"),
    ],
)
def test_bucket_of_a_due_date(due: date, today: date, bucket: str) -> None:
    assert dpd_bucket(days=days_past_due(due_date=due, today=today)) == bucket


def test_custom_buckets() -> None:
    buckets = parse_buckets("1-30,31+")
    assert dpd_bucket(days=0, buckets=buckets) == "current"
    assert dpd_bucket(days=1, buckets=buckets) == "1-30"
    assert dpd_bucket(days=30, buckets=buckets) == "1-30"
    assert dpd_bucket(days=31, buckets=buckets) == "31+"
    assert dpd_bucket(days=9999, buckets=buckets) == "31+"


# --- parse_buckets ----------------------------------------------------------------------------


def test_default_spec_gives_the_default_ranges() -> None:
    parsed = parse_buckets(DEFAULT_SPEC)
    # The names differ ("181+" here, "180+" in DEFAULT_BUCKETS), the ranges must not.
    assert ranges(parsed) == ranges(DEFAULT_BUCKETS)
    assert ranges(parsed) == [
        (1, 7),
        (8, 15),
        (16, 30),
        (31, 60),
        (61, 90),
        (91, 180),
        (181, None),
    ]
    assert [name for name, _, _ in parsed] == DEFAULT_SPEC.split(",")


@PROPERTY
@given(days=st.integers(min_value=0, max_value=1000))
def test_default_spec_and_default_buckets_agree_on_every_dpd(days: int) -> None:
    parsed = parse_buckets(DEFAULT_SPEC)
    by_default = dpd_bucket(days=days)
    by_parsed = dpd_bucket(days=days, buckets=parsed)
    if days == 0:
        assert by_default == by_parsed == CURRENT
    else:
        default_range = {name: (low, high) for name, low, high in DEFAULT_BUCKETS}[by_default]
        parsed_range = {name: (low, high) for name, low, high in parsed}[by_parsed]
        assert default_range == parsed_range


def test_parse_buckets_tolerates_spaces_and_empty_parts() -> None:
    assert parse_buckets(" 1-7 , 8-15 ,, 16+ ,") == (
        ("1-7", 1, 7),
        ("8-15", 8, 15),
        ("16+", 16, None),
    )


def test_a_single_open_bucket_is_a_valid_spec() -> None:
    assert parse_buckets("1+") == (("1+", 1, None),)


def test_one_day_buckets_are_allowed() -> None:
    assert parse_buckets("1-1,2-2,3+") == (("1-1", 1, 1), ("2-2", 2, 2), ("3+", 3, None))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        (" , ,", "empty"),
        ("1-7,9-15,16+", "should start at 8"),  # gap: 8 has no bucket
        ("1-7,7-15,16+", "should start at 8"),  # overlap: 7 in two buckets
        ("1-7,8-15,10+", "should start at 16"),  # open bucket overlapping
        ("2-7,8+", "should start at 1"),  # 1 has no bucket
        ("0-7,8+", "should start at 1"),
        ("1-7,8-15", "open-ended"),  # last bucket closed: 16+ would have no bucket
        ("1-7", "open-ended"),
        ("1-7,8+,16-30", "last one"),  # open bucket not last
        ("1+,2+", "last one"),
        ("8-3", "ends before it starts"),
        ("1-7,15-8,16+", "ends before it starts"),
        ("1-7,8", "LOW-HIGH"),
    ],
)
def test_bad_bucket_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_buckets(spec)


@pytest.mark.parametrize("spec", ["a-b", "1-x,8+", "1-7,x+", "+", "1-7,8-15-30,31+"])
def test_non_numeric_bucket_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):  # int() parse errors: no fixed message
        parse_buckets(spec)


@PROPERTY
@given(widths=st.lists(st.integers(min_value=1, max_value=60), min_size=0, max_size=8))
def test_generated_contiguous_specs_parse_and_cover_every_day(widths: list[int]) -> None:
    parts, low = [], 1
    for width in widths:
        parts.append(f"{low}-{low + width - 1}")
        low += width
    parts.append(f"{low}+")
    buckets = parse_buckets(",".join(parts))
    assert [name for name, _, _ in buckets] == parts
    for days in range(1, low + 5):
        holding = [n for n, lo, hi in buckets if lo <= days and (hi is None or days <= hi)]
        assert len(holding) == 1
        assert dpd_bucket(days=days, buckets=buckets) == holding[0]


# --- due_date_range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "earliest", "latest"),
    [
        ("current", date(2026, 3, 1), None),
        ("1-7", date(2026, 2, 22), date(2026, 2, 28)),
        ("8-15", date(2026, 2, 14), date(2026, 2, 21)),
        ("16-30", date(2026, 1, 30), date(2026, 2, 13)),
        ("180+", None, date(2025, 9, 1)),
    ],
)
def test_due_date_range_examples(bucket: str, earliest: date | None, latest: date | None) -> None:
    assert due_date_range(bucket=bucket, today=date(2026, 3, 1)) == (earliest, latest)


def test_due_date_range_with_custom_buckets() -> None:
    buckets = parse_buckets(DEFAULT_SPEC)
    today = date(2024, 3, 1)
    assert due_date_range(bucket="181+", today=today, buckets=buckets) == (None, date(2023, 9, 2))
    assert due_date_range(bucket="1-7", today=today, buckets=buckets) == (
        date(2024, 2, 23),
        date(2024, 2, 29),
    )
    with pytest.raises(ValueError, match="unknown bucket"):
        due_date_range(bucket="180+", today=today, buckets=buckets)  # default name, not here


@pytest.mark.parametrize("bucket", ["181+", "0-7", "", "Current", "late"])
def test_unknown_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(ValueError, match="unknown bucket"):
        due_date_range(bucket=bucket, today=date(2026, 3, 1))


def _within(day: date, bounds: tuple[date | None, date | None]) -> bool:
    earliest, latest = bounds
    return (earliest is None or earliest <= day) and (latest is None or day <= latest)


@PROPERTY
@given(today=dates, dpd=st.integers(min_value=0, max_value=400))
def test_due_date_falls_in_exactly_the_range_of_its_bucket(today: date, dpd: int) -> None:
    due = today - timedelta(days=dpd)
    bucket = dpd_bucket(days=dpd)
    assert _within(due, due_date_range(bucket=bucket, today=today))
    names = [CURRENT, *(name for name, _, _ in DEFAULT_BUCKETS)]
    holding = [n for n in names if _within(due, due_date_range(bucket=n, today=today))]
    assert holding == [bucket]


@PROPERTY
@given(today=dates, offset=st.integers(min_value=-60, max_value=400))
def test_due_dates_not_yet_due_are_in_the_current_range(today: date, offset: int) -> None:
    due = today - timedelta(days=offset)
    bucket = dpd_bucket(days=days_past_due(due_date=due, today=today))
    assert (bucket == CURRENT) == (offset <= 0)
    assert _within(due, due_date_range(bucket=bucket, today=today))


# --- stages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "stage"),
    [
        (0, Stage.REMINDER),
        (1, Stage.REMINDER),
        (7, Stage.REMINDER),
        (8, Stage.EARLY),
        (30, Stage.EARLY),
        (31, Stage.LATE),
        (400, Stage.LATE),
    ],
)
def test_stage_follows_dpd(days: int, stage: Stage) -> None:
    assert stage_for(days=days) == stage


@pytest.mark.parametrize("current", [Stage.REMINDER, Stage.EARLY, Stage.LATE])
@pytest.mark.parametrize(
    ("days", "stage"), [(0, Stage.REMINDER), (8, Stage.EARLY), (31, Stage.LATE)]
)
def test_dpd_stages_are_recomputed_from_dpd(current: Stage, days: int, stage: Stage) -> None:
    assert stage_for(days=days, current=current) == stage


@pytest.mark.parametrize("current", [Stage.LEGAL, Stage.RESTRUCTURING, Stage.CLOSED])
@pytest.mark.parametrize("days", [0, 7, 8, 30, 31, 1000])
def test_manual_stages_are_kept_whatever_the_dpd(current: Stage, days: int) -> None:
    assert stage_for(days=days, current=current) is current


def test_manual_stages_are_exactly_the_ones_people_set() -> None:
    assert {Stage.LEGAL, Stage.RESTRUCTURING, Stage.CLOSED} == MANUAL_STAGES


@pytest.mark.parametrize(
    ("stage", "treatment", "skill"),
    [
        (Stage.EARLY, "soft_call", "soft_call"),
        (Stage.EARLY, None, "early"),
        (Stage.LEGAL, "", "legal"),
    ],
)
def test_skill_for(stage: Stage, treatment: str | None, skill: str) -> None:
    assert skill_for(stage=stage, treatment=treatment) == skill


# --- payment allocation -----------------------------------------------------------------------


def test_balance_adds_components_exactly() -> None:
    assert Balance(Decimal("0.10"), Decimal("0.20"), Decimal("0")).outstanding == Decimal("0.30")


BALANCE = Balance(principal=D("1000.00"), interest=D("50.00"), fees=D("20.00"))


@pytest.mark.parametrize(
    ("amount", "fees", "interest", "principal", "unapplied", "after"),
    [
        (  # fees in full, then part of the interest, nothing on principal
            "60.00",
            "20.00",
            "40.00",
            "0.00",
            "0.00",
            ("1000.00", "10.00", "0.00"),
        ),
        ("15.00", "15.00", "0.00", "0.00", "0.00", ("1000.00", "50.00", "5.00")),
        ("20.00", "20.00", "0.00", "0.00", "0.00", ("1000.00", "50.00", "0.00")),
        ("70.00", "20.00", "50.00", "0.00", "0.00", ("1000.00", "0.00", "0.00")),
        ("70.01", "20.00", "50.00", "0.01", "0.00", ("999.99", "0.00", "0.00")),
        ("100.00", "20.00", "50.00", "30.00", "0.00", ("970.00", "0.00", "0.00")),
        ("1070.00", "20.00", "50.00", "1000.00", "0.00", ("0.00", "0.00", "0.00")),
        ("1100.00", "20.00", "50.00", "1000.00", "30.00", ("0.00", "0.00", "0.00")),
        ("0.01", "0.01", "0.00", "0.00", "0.00", ("1000.00", "50.00", "19.99")),
    ],
)
def test_allocation_waterfall(
    amount: str,
    fees: str,
    interest: str,
    principal: str,
    unapplied: str,
    after: tuple[str, str, str],
) -> None:
    allocation, balance = allocate_payment(amount=D(amount), balance=BALANCE)
    assert allocation == Allocation(
        fees=D(fees), interest=D(interest), principal=D(principal), unapplied=D(unapplied)
    )
    assert balance == Balance(principal=D(after[0]), interest=D(after[1]), fees=D(after[2]))
    assert allocation.applied == D(amount) - D(unapplied)


def test_payment_on_a_settled_balance_is_all_unapplied() -> None:
    settled = Balance(D("0.00"), D("0.00"), D("0.00"))
    allocation, after = allocate_payment(amount=D("25.00"), balance=settled)
    assert allocation == Allocation(D("0.00"), D("0.00"), D("0.00"), D("25.00"))
    assert allocation.applied == D("0.00")
    assert after == settled


def test_without_fees_interest_is_paid_first() -> None:
    allocation, after = allocate_payment(
        amount=D("30.00"), balance=Balance(D("500.00"), D("12.50"), D("0.00"))
    )
    assert allocation == Allocation(D("0.00"), D("12.50"), D("17.50"), D("0.00"))
    assert after == Balance(D("482.50"), D("0.00"), D("0.00"))


@pytest.mark.parametrize("amount", ["0", "0.00", "-0.01", "-60.00"])
def test_non_positive_payments_are_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        allocate_payment(amount=D(amount), balance=BALANCE)


@PROPERTY
@given(
    amount=cents(1, 10**8),
    principal=cents(0, 10**8),
    interest=cents(0, 10**6),
    fees=cents(0, 10**5),
)
def test_allocation_conserves_money(
    amount: Decimal, principal: Decimal, interest: Decimal, fees: Decimal
) -> None:
    before = Balance(principal=principal, interest=interest, fees=fees)
    allocation, after = allocate_payment(amount=amount, balance=before)
    assert allocation.applied + allocation.unapplied == amount
    for part in (allocation.fees, allocation.interest, allocation.principal, allocation.unapplied):
        assert part >= 0
    for part in (after.principal, after.interest, after.fees):
        assert part >= 0
    assert after.outstanding == before.outstanding - allocation.applied
    # Waterfall: a later component only receives money once the earlier ones are cleared.
    if allocation.interest > 0:
        assert after.fees == 0
    if allocation.principal > 0:
        assert after.fees == 0
        assert after.interest == 0
    if allocation.unapplied > 0:
        assert after.outstanding == 0
    assert allocation.unapplied == max(D(0), amount - before.outstanding)


# --- months and arrears -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap February
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2100, 1, 31), 1, date(2100, 2, 28)),  # 2100 is not leap
        (date(2000, 1, 31), 1, date(2000, 2, 29)),  # 2000 is
        (date(2026, 1, 31), 3, date(2026, 4, 30)),
        (date(2026, 1, 31), 2, date(2026, 3, 31)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),  # December into next year
        (date(2025, 12, 31), 1, date(2026, 1, 31)),
        (date(2025, 11, 30), 14, date(2027, 1, 30)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),  # back over a year end
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2026, 1, 15), -13, date(2024, 12, 15)),
        (date(2026, 1, 15), -12, date(2025, 1, 15)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2026, 6, 30), 0, date(2026, 6, 30)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@PROPERTY
@given(day=dates, months=st.integers(min_value=-600, max_value=600))
def test_add_months_moves_the_month_and_clamps_the_day(day: date, months: int) -> None:
    moved = add_months(day, months)
    assert (moved.year * 12 + moved.month) - (day.year * 12 + day.month) == months
    assert moved.day <= day.day
    if moved.day < day.day:  # clamped: only ever to the last day of the month
        assert (moved + timedelta(days=1)).day == 1
    if day.day <= 28:
        assert moved.day == day.day
        assert add_months(moved, -months) == day


@pytest.mark.parametrize(
    ("installment", "credited", "expected"),
    [
        ("1000.00", "2500.00", date(2026, 3, 15)),  # two whole instalments covered
        ("1000.00", "999.99", date(2026, 1, 15)),
        ("1000.00", "1000.00", date(2026, 2, 15)),
        ("1000.00", "3000.00", date(2026, 4, 15)),
        ("1000.00", "0.00", date(2026, 1, 15)),
        ("1000.00", "-500.00", date(2026, 1, 15)),
        ("333.33", "999.99", date(2026, 4, 15)),
        ("0.00", "2500.00", date(2026, 1, 15)),
        (None, "2500.00", date(2026, 1, 15)),  # single sum: only payment in full helps
        ("1000.00", "13000.00", date(2027, 2, 15)),  # across a year end
    ],
)
def test_arrears_due_date(installment: str | None, credited: str, expected: date) -> None:
    assert (
        arrears_due_date(
            first_due_date=date(2026, 1, 15),
            installment_amount=None if installment is None else D(installment),
            credited=D(credited),
        )
        == expected
    )


@pytest.mark.parametrize(
    ("first", "credited", "expected"),
    [
        (date(2026, 1, 31), "1000.00", date(2026, 2, 28)),
        (date(2026, 1, 31), "2000.00", date(2026, 3, 31)),  # from the anchor, not Feb 28
        (date(2026, 1, 31), "3000.00", date(2026, 4, 30)),
        (date(2024, 1, 31), "1000.00", date(2024, 2, 29)),
    ],
)
def test_arrears_due_date_keeps_a_month_end_anchor(
    first: date, credited: str, expected: date
) -> None:
    assert (
        arrears_due_date(
            first_due_date=first, installment_amount=D("1000.00"), credited=D(credited)
        )
        == expected
    )


# --- promises and plans -----------------------------------------------------------------------

PROMISE = [Installment(due_date=date(2026, 11, 10), amount=D("500.00"))]


@pytest.mark.parametrize(
    ("payments", "today", "status"),
    [
        ([(date(2026, 11, 13), "500.00")], date(2026, 11, 13), PromiseStatus.KEPT),
        ([(date(2026, 11, 13), "500.00")], date(2026, 12, 31), PromiseStatus.KEPT),
        ([(date(2026, 11, 1), "500.00")], date(2026, 11, 1), PromiseStatus.KEPT),  # early
        ([(date(2026, 11, 10), "600.00")], date(2026, 11, 20), PromiseStatus.KEPT),  # more
        ([(date(2026, 11, 14), "500.00")], date(2026, 11, 14), PromiseStatus.BROKEN),  # late
        ([(date(2026, 11, 14), "500.00")], date(2026, 12, 1), PromiseStatus.BROKEN),
        ([], date(2026, 11, 9), PromiseStatus.PENDING),
        ([], date(2026, 11, 10), PromiseStatus.PENDING),
        ([], date(2026, 11, 13), PromiseStatus.PENDING),  # last day of grace
        ([], date(2026, 11, 14), PromiseStatus.BROKEN),
        ([(date(2026, 11, 10), "499.99")], date(2026, 11, 13), PromiseStatus.PENDING),
        ([(date(2026, 11, 10), "499.99")], date(2026, 11, 14), PromiseStatus.BROKEN),
        (  # two part payments inside the grace period add up
            [(date(2026, 11, 9), "200.00"), (date(2026, 11, 12), "300.00")],
            date(2026, 11, 20),
            PromiseStatus.KEPT,
        ),
        (  # order of the payment list does not matter
            [(date(2026, 11, 12), "300.00"), (date(2026, 11, 9), "200.00")],
            date(2026, 11, 20),
            PromiseStatus.KEPT,
        ),
        (  # the second part came a day too late
            [(date(2026, 11, 9), "200.00"), (date(2026, 11, 14), "300.00")],
            date(2026, 11, 20),
            PromiseStatus.BROKEN,
        ),
    ],
)
def test_promise_with_grace(
    payments: list[tuple[date, str]], today: date, status: PromiseStatus
) -> None:
    assert evaluate_schedule(
        installments=PROMISE,
        payments=[(day, D(amount)) for day, amount in payments],
        today=today,
        grace_days=3,
    ) == [status]


def test_promise_without_grace_breaks_the_day_after() -> None:
    def status(today: date) -> list[PromiseStatus]:
        return evaluate_schedule(installments=PROMISE, payments=[], today=today, grace_days=0)

    assert status(date(2026, 11, 10)) == [PromiseStatus.PENDING]
    assert status(date(2026, 11, 11)) == [PromiseStatus.BROKEN]


PLAN = [
    Installment(due_date=date(2026, 1, 10), amount=D("100.00")),
    Installment(due_date=date(2026, 2, 10), amount=D("100.00")),
    Installment(due_date=date(2026, 3, 10), amount=D("100.00")),
]


@pytest.mark.parametrize(
    ("payments", "today", "statuses"),
    [
        (  # an early, larger payment covers the first two instalments
            [(date(2026, 1, 5), "200.00")],
            date(2026, 1, 20),
            ["kept", "kept", "pending"],
        ),
        (
            [(date(2026, 1, 5), "200.00")],
            date(2026, 3, 14),
            ["kept", "kept", "broken"],
        ),
        (  # missed the middle one; catching up later does not un-break it
            [(date(2026, 1, 10), "100.00"), (date(2026, 3, 10), "200.00")],
            date(2026, 3, 31),
            ["kept", "broken", "kept"],
        ),
        (
            [(date(2026, 1, 10), "100.00")],
            date(2026, 2, 14),
            ["kept", "broken", "pending"],
        ),
        (
            [(date(2026, 1, 10), "100.00"), (date(2026, 2, 13), "100.00")],
            date(2026, 2, 14),
            ["kept", "kept", "pending"],
        ),
        (  # a short first payment: the first breaks, and 150 does not cover 200 either
            [(date(2026, 1, 10), "50.00"), (date(2026, 2, 1), "100.00")],
            date(2026, 2, 14),
            ["broken", "broken", "pending"],
        ),
        ([], date(2026, 1, 1), ["pending", "pending", "pending"]),
        ([], date(2027, 1, 1), ["broken", "broken", "broken"]),
        ([(date(2025, 12, 1), "300.00")], date(2025, 12, 1), ["kept", "kept", "kept"]),
    ],
)
def test_plan_statuses_are_cumulative(
    payments: list[tuple[date, str]], today: date, statuses: list[str]
) -> None:
    assert evaluate_schedule(
        installments=PLAN,
        payments=[(day, D(amount)) for day, amount in payments],
        today=today,
        grace_days=3,
    ) == [PromiseStatus(s) for s in statuses]


def test_empty_schedule_has_no_statuses() -> None:
    assert (
        evaluate_schedule(installments=[], payments=[], today=date(2026, 1, 1), grace_days=3) == []
    )


@PROPERTY
@given(
    amounts=st.lists(cents(1, 100_000), min_size=1, max_size=6),
    paid=st.lists(
        st.tuples(st.integers(min_value=-10, max_value=200), cents(1, 200_000)), max_size=6
    ),
    today_offset=st.integers(min_value=-10, max_value=220),
    grace=st.integers(min_value=0, max_value=10),
)
def test_schedule_statuses_match_their_definition(
    amounts: list[Decimal],
    paid: list[tuple[int, Decimal]],
    today_offset: int,
    grace: int,
) -> None:
    start = date(2026, 1, 31)
    plan = [Installment(add_months(start, i), amount) for i, amount in enumerate(amounts)]
    payments = [(start + timedelta(days=offset), amount) for offset, amount in paid]
    today = start + timedelta(days=today_offset)
    statuses = evaluate_schedule(
        installments=plan, payments=payments, today=today, grace_days=grace
    )
    assert len(statuses) == len(plan)
    for k, (item, status) in enumerate(zip(plan, statuses, strict=True)):
        deadline = item.due_date + timedelta(days=grace)
        owed = sum((i.amount for i in plan[: k + 1]), D(0))
        by_deadline = sum((a for d, a in payments if d <= deadline), D(0))
        if by_deadline >= owed:
            assert status is PromiseStatus.KEPT
        elif today > deadline:
            assert status is PromiseStatus.BROKEN
        else:
            assert status is PromiseStatus.PENDING
    # Paying more (or earlier) never turns a kept instalment into anything else.
    more = evaluate_schedule(
        installments=plan,
        payments=[*payments, (start, D("1.00"))],
        today=today,
        grace_days=grace,
    )
    for before, after in zip(statuses, more, strict=True):
        if before is PromiseStatus.KEPT:
            assert after is PromiseStatus.KEPT


@pytest.mark.parametrize(
    ("shape", "parts"),
    [
        ("3+6+12", (3, 6, 12)),
        ("12", (12,)),
        ("1", (1,)),
        ("120", (120,)),
        ("60+60", (60, 60)),
        (" 3 + 6 ", (3, 6)),
    ],
)
def test_parse_plan_shape(shape: str, parts: tuple[int, ...]) -> None:
    assert parse_plan_shape(shape) == parts


@pytest.mark.parametrize(
    "shape", ["0+3", "3+0", "-1+3", "a+b", "3+x", "", "+", "3++6", "3.5", "121", "60+61", "100+21"]
)
def test_bad_plan_shapes_are_refused(shape: str) -> None:
    with pytest.raises(ValueError, match="plan shape"):
        parse_plan_shape(shape)


def test_build_schedule_for_a_3_6_12_plan() -> None:
    schedule = build_schedule(
        total=D("2100.00"), first_due=date(2026, 1, 31), shape=parse_plan_shape("3+6+12")
    )
    assert len(schedule) == 21
    assert [i.amount for i in schedule] == [D("100.00")] * 21
    assert [i.due_date for i in schedule[:5]] == [
        date(2026, 1, 31),
        date(2026, 2, 28),  # clamped to the month end
        date(2026, 3, 31),  # back to the 31st: months count from the first due date
        date(2026, 4, 30),
        date(2026, 5, 31),
    ]
    assert schedule[12].due_date == date(2027, 1, 31)
    assert schedule[-1].due_date == date(2027, 9, 30)


def test_build_schedule_in_a_leap_year() -> None:
    schedule = build_schedule(total=D("300.00"), first_due=date(2024, 1, 31), shape=[3])
    assert [i.due_date for i in schedule] == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
    ]


@pytest.mark.parametrize(
    ("total", "shape", "amounts"),
    [
        ("1000.00", [3], ["333.33", "333.33", "333.34"]),
        ("100.00", [3], ["33.33", "33.33", "33.34"]),
        ("0.05", [3], ["0.01", "0.01", "0.03"]),
        ("0.03", [3], ["0.01", "0.01", "0.01"]),
        ("10.00", [1, 2], ["3.33", "3.33", "3.34"]),
        ("1000.00", [1], ["1000.00"]),
        ("999.99", [2], ["499.99", "500.00"]),
        ("1000.00", [3, 6, 12], ["47.61"] * 20 + ["47.80"]),  # 21 x 47.61 = 999.81
    ],
)
def test_build_schedule_sums_exactly(total: str, shape: list[int], amounts: list[str]) -> None:
    schedule = build_schedule(total=D(total), first_due=date(2026, 1, 1), shape=shape)
    assert [i.amount for i in schedule] == [D(a) for a in amounts]
    assert sum((i.amount for i in schedule), D(0)) == D(total)


def test_step_weights_give_rising_amounts() -> None:
    # units = 3 x 1 + 6 x 2 + 12 x 3 = 51; 10000.00 / 51 = 196.0784...
    schedule = build_schedule(
        total=D("10000.00"),
        first_due=date(2026, 1, 1),
        shape=[3, 6, 12],
        step_weights=[D(1), D(2), D(3)],
    )
    amounts = [i.amount for i in schedule]
    # 3 x 196.07 + 6 x 392.15 + 12 x 588.23 = 9999.87; the 0.13 left goes on the last one.
    assert amounts == [D("196.07")] * 3 + [D("392.15")] * 6 + [D("588.23")] * 11 + [D("588.36")]
    assert sum(amounts, D(0)) == D("10000.00")


def test_step_weights_in_halves() -> None:
    # units = 2 x 0.5 + 2 x 1 = 3; 600.00 / 3 = 200.00 a unit
    schedule = build_schedule(
        total=D("600.00"), first_due=date(2026, 1, 1), shape=[2, 2], step_weights=[D("0.5"), D(1)]
    )
    assert [i.amount for i in schedule] == [D("100.00"), D("100.00"), D("200.00"), D("200.00")]


# Regression: dividing first (28 significant digits) then flooring used to lose a cent.
@pytest.mark.parametrize(
    ("total", "shape", "weights", "amounts"),
    [
        # 1700.00 over 3+6+12 weighted 1, 2, 3: 51 units of 33.333...; the 12 x 3 units are
        # exactly 100.00 a month (remainder 0.05 on the last). Got 99.99 x 11 and 100.16.
        (
            "1700.00",
            [3, 6, 12],
            ["1", "2", "3"],
            ["33.33"] * 3 + ["66.66"] * 6 + ["100.00"] * 11 + ["100.05"],
        ),
        # 300.00 weighted 3 then 6 over 1+1: 100.00 and 200.00. Got 99.99 and 200.01.
        ("300.00", [1, 1], ["3", "6"], ["100.00", "200.00"]),
        # Equal weights of 3 must give the same as the default equal split. Got 99.99 x 8, 100.08.
        ("900.00", [3, 6], ["3", "3"], ["100.00"] * 9),
        # 0.02 over 2 months is 0.01 each (as it is without weights). Refused as "too small".
        ("0.02", [2], ["0.43"], ["0.01", "0.01"]),
    ],
)
def test_weighted_step_amounts_are_exact_floors(
    total: str, shape: list[int], weights: list[str], amounts: list[str]
) -> None:
    schedule = build_schedule(
        total=D(total),
        first_due=date(2026, 1, 1),
        shape=shape,
        step_weights=[D(w) for w in weights],
    )
    assert [i.amount for i in schedule] == [D(a) for a in amounts]


@pytest.mark.parametrize(
    ("total", "shape", "weights", "message"),
    [
        ("0.20", [3, 6, 12], None, "too small"),  # 0.0095 a month rounds down to 0.00
        ("0.02", [3], None, "too small"),
        ("0.00", [3], None, "positive amount"),
        ("-100.00", [3], None, "positive amount"),
        ("100.00", [3, 6], ["1"], "one positive weight"),
        ("100.00", [3, 6], ["1", "0"], "one positive weight"),
        ("100.00", [3, 6], ["1", "-1"], "one positive weight"),
        ("100.00", [3], ["1", "2"], "one positive weight"),
        ("1.00", [1, 1], ["1", "1000"], "too small"),  # first step 0.000999 rounds to 0.00
    ],
)
def test_bad_plans_are_refused(
    total: str, shape: list[int], weights: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_schedule(
            total=D(total),
            first_due=date(2026, 1, 1),
            shape=shape,
            step_weights=None if weights is None else [D(w) for w in weights],
        )


def test_the_smallest_plan_is_a_cent_a_month() -> None:
    schedule = build_schedule(total=D("0.21"), first_due=date(2026, 1, 1), shape=[3, 6, 12])
    assert [i.amount for i in schedule] == [D("0.01")] * 21


shapes = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4).filter(
    lambda s: sum(s) <= 120
)


@PROPERTY
@given(total=cents(1, 10**10), shape=shapes, first_due=dates)
@example(total=D("1000.00"), shape=[3, 6, 12], first_due=date(2024, 1, 31))
@example(total=D("0.20"), shape=[3, 6, 12], first_due=date(2026, 1, 1))
def test_equal_step_schedules_sum_to_the_total(
    total: Decimal, shape: list[int], first_due: date
) -> None:
    count = sum(shape)
    if total < D("0.01") * count:
        with pytest.raises(ValueError, match="too small"):
            build_schedule(total=total, first_due=first_due, shape=shape)
        return
    schedule = build_schedule(total=total, first_due=first_due, shape=shape)
    amounts = [i.amount for i in schedule]
    assert len(schedule) == count
    assert sum(amounts, D(0)) == total
    assert all(a > 0 and a == a.quantize(D("0.01")) for a in amounts)
    assert len(set(amounts[:-1])) <= 1  # equal, except the last takes the remainder
    assert D(0) <= amounts[-1] - amounts[0] < D("0.01") * count
    assert [i.due_date for i in schedule] == [add_months(first_due, n) for n in range(count)]


@PROPERTY
@given(
    total=cents(1, 10**10),
    steps=st.lists(
        st.tuples(st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=500)),
        min_size=1,
        max_size=4,
    ),
)
@example(total=D("1700.00"), steps=[(3, 100), (6, 200), (12, 300)])
@example(total=D("0.02"), steps=[(2, 43)])
def test_weighted_schedules_sum_to_the_total_and_rise_with_the_weights(
    total: Decimal, steps: list[tuple[int, int]]
) -> None:
    shape = [months for months, _ in steps]
    weights = sorted(D(w).scaleb(-2) for _, w in steps)  # rising weights, e.g. 0.25, 1.50
    units = sum((Fraction(w) * n for w, n in zip(weights, shape, strict=True)), Fraction(0))
    smallest_share = Fraction(total) * Fraction(weights[0]) / units  # exact monthly amount
    if smallest_share < Fraction(1, 100):
        with pytest.raises(ValueError, match="too small"):
            build_schedule(
                total=total, first_due=date(2026, 1, 31), shape=shape, step_weights=weights
            )
        return
    schedule = build_schedule(
        total=total, first_due=date(2026, 1, 31), shape=shape, step_weights=weights
    )
    amounts = [i.amount for i in schedule]
    assert len(amounts) == sum(shape)
    assert sum(amounts, D(0)) == total
    assert all(a > 0 for a in amounts)
    assert amounts == sorted(amounts)


# --- settlements and approval -----------------------------------------------------------------

DEBT = Balance(principal=D("10000.00"), interest=D("1000.00"), fees=D("0.00"))


def test_settlement_waiving_30_percent_of_interest() -> None:
    offer = settlement_offer(balance=DEBT, interest_waiver=D("0.30"))
    assert offer == Settlement(
        amount=D("10700.00"),
        waived_interest=D("300.00"),
        waived_fees=D("0.00"),
        waived_principal=D("0.00"),
    )
    assert offer.waived == D("300.00")


def test_settlement_waiving_every_component() -> None:
    offer = settlement_offer(
        balance=Balance(D("10000.00"), D("1000.00"), D("200.00")),
        interest_waiver=D("0.5"),
        fees_waiver=D("1"),
        principal_waiver=D("0.10"),
    )
    assert offer == Settlement(D("9500.00"), D("500.00"), D("200.00"), D("1000.00"))
    assert offer.waived == D("1700.00")
    assert offer.amount + offer.waived == D("11200.00")


def test_settlement_waivers_round_down_to_the_cent() -> None:
    # 333.33 x 0.5 = 166.665: the debtor is forgiven 166.66, never a fraction more.
    offer = settlement_offer(
        balance=Balance(D("1000.00"), D("333.33"), D("0.00")), interest_waiver=D("0.5")
    )
    assert offer.waived_interest == D("166.66")
    assert offer.amount == D("1166.67")


def test_settlement_without_waivers_is_the_outstanding_balance() -> None:
    assert settlement_offer(balance=DEBT, interest_waiver=D(0)).amount == D("11000.00")


def test_settlement_waiving_all_interest_is_allowed() -> None:
    assert settlement_offer(balance=DEBT, interest_waiver=D(1)).amount == D("10000.00")


@pytest.mark.parametrize(
    ("interest", "fees", "principal"),
    [
        ("-0.01", "0", "0"),
        ("1.01", "0", "0"),
        ("0.3", "-0.5", "0"),
        ("0.3", "1.5", "0"),
        ("0.3", "0", "-0.1"),
        ("0.3", "0", "2"),
    ],
)
def test_waivers_outside_zero_to_one_are_refused(interest: str, fees: str, principal: str) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        settlement_offer(
            balance=DEBT,
            interest_waiver=D(interest),
            fees_waiver=D(fees),
            principal_waiver=D(principal),
        )


def test_waiving_everything_is_refused() -> None:
    with pytest.raises(ValueError, match="collect something"):
        settlement_offer(
            balance=Balance(D("10000.00"), D("1000.00"), D("50.00")),
            interest_waiver=D(1),
            fees_waiver=D(1),
            principal_waiver=D(1),
        )


@PROPERTY
@given(
    principal=cents(0, 10**8),
    interest=cents(0, 10**7),
    fees=cents(0, 10**5),
    shares=st.tuples(*(st.integers(min_value=0, max_value=100) for _ in range(3))),
)
def test_settlement_amount_plus_waived_is_the_balance(
    principal: Decimal, interest: Decimal, fees: Decimal, shares: tuple[int, int, int]
) -> None:
    balance = Balance(principal, interest, fees)
    interest_share, fees_share, principal_share = (D(s).scaleb(-2) for s in shares)
    parts = ((interest, interest_share), (fees, fees_share), (principal, principal_share))
    # Nothing is left to collect only if every component is zero or waived in full.
    nothing_left = all(part == 0 or share == 1 for part, share in parts)
    if nothing_left:
        with pytest.raises(ValueError, match="collect something"):
            settlement_offer(
                balance=balance,
                interest_waiver=interest_share,
                fees_waiver=fees_share,
                principal_waiver=principal_share,
            )
        return
    offer = settlement_offer(
        balance=balance,
        interest_waiver=interest_share,
        fees_waiver=fees_share,
        principal_waiver=principal_share,
    )
    assert offer.amount > 0
    assert offer.amount + offer.waived == balance.outstanding
    waived = (offer.waived_interest, offer.waived_fees, offer.waived_principal)
    for (part, share), forgiven in zip(parts, waived, strict=True):
        # Rounded down to the cent: never more than the share, less by under a cent.
        assert part * share - D("0.01") < forgiven <= part * share
        assert forgiven == forgiven.quantize(D("0.01"))


@pytest.mark.parametrize(
    ("role", "waived", "problem"),
    [
        ("collector", "0.00", None),
        ("collector", "1000.00", None),  # exactly 10% of 10000.00
        ("collector", "1000.01", "limit of 10%"),
        ("collector", "1010.00", "waiving 10.1% of the balance exceeds a collector's limit of 10%"),
        ("supervisor", "1010.00", None),
        ("supervisor", "3000.00", None),  # exactly 30%
        (
            "supervisor",
            "3010.00",
            "waiving 30.1% of the balance exceeds a supervisor's limit of 30%",
        ),
        ("manager", "5000.00", None),
        ("manager", "5010.00", "limit of 50%"),
        ("head_of_collections", "10000.00", None),
    ],
)
def test_waiver_limits_by_role(role: str, waived: str, problem: str | None) -> None:
    found = approval_problem(role=role, outstanding=D("10000.00"), waived=D(waived))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_a_settlement_offer_checked_against_a_collector() -> None:
    # 30% of 1000.00 interest is 300.00 of an 11000.00 balance: 2.7%, fine for a collector.
    offer = settlement_offer(balance=DEBT, interest_waiver=D("0.30"))
    assert (
        approval_problem(role="collector", outstanding=DEBT.outstanding, waived=offer.waived)
        is None
    )
    # All the interest and a tenth of the principal: 2000.00 of 11000.00 = 18.2%.
    bigger = settlement_offer(balance=DEBT, interest_waiver=D(1), principal_waiver=D("0.10"))
    assert bigger.waived == D("2000.00")
    refused = approval_problem(
        role="supervisor",
        outstanding=DEBT.outstanding,
        waived=bigger.waived,
        waived_principal=bigger.waived_principal,
    )
    assert refused == "a supervisor may not waive principal"
    assert (
        approval_problem(
            role="manager",
            outstanding=DEBT.outstanding,
            waived=bigger.waived,
            waived_principal=bigger.waived_principal,
        )
        is None
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("collector", False), ("supervisor", False), ("manager", True), ("head_of_collections", True)],
)
def test_principal_waiver_by_role(role: str, allowed: bool) -> None:
    found = approval_problem(
        role=role, outstanding=D("10000.00"), waived=D("100.00"), waived_principal=D("100.00")
    )
    if allowed:
        assert found is None
    else:
        assert found == f"a {role} may not waive principal"


@pytest.mark.parametrize(
    ("role", "installments", "problem"),
    [
        ("collector", 6, None),
        ("collector", 7, "7 instalments exceed a collector's limit of 6"),
        ("supervisor", 12, None),
        ("supervisor", 13, "13 instalments exceed a supervisor's limit of 12"),
        ("manager", 36, None),
        ("manager", 37, "37 instalments exceed a manager's limit of 36"),
        ("head_of_collections", 120, None),
        ("head_of_collections", 121, "121 instalments exceed a head_of_collections's limit of 120"),
    ],
)
def test_installment_limits_by_role(role: str, installments: int, problem: str | None) -> None:
    assert (
        approval_problem(role=role, outstanding=D("5000.00"), installments=installments) == problem
    )


def test_unknown_role_names_the_known_roles() -> None:
    found = approval_problem(role="intern", outstanding=D("100.00"))
    assert found == (
        "unknown role 'intern'; known roles: collector, head_of_collections, manager, supervisor"
    )


def test_role_limits_can_be_overridden() -> None:
    limits = {"agent": DEFAULT_ROLE_LIMITS["collector"]}
    assert approval_problem(role="agent", outstanding=D("100.00"), limits=limits) is None
    assert approval_problem(role="collector", outstanding=D("100.00"), limits=limits) == (
        "unknown role 'collector'; known roles: agent"
    )


def test_default_role_limits_widen_with_seniority() -> None:
    order = ["collector", "supervisor", "manager", "head_of_collections"]
    limits = [DEFAULT_ROLE_LIMITS[r] for r in order]
    assert [rule.max_waiver_share for rule in limits] == [D("0.10"), D("0.30"), D("0.50"), D(1)]
    assert [rule.max_installments for rule in limits] == [6, 12, 36, 120]
    assert [rule.may_waive_principal for rule in limits] == [False, False, True, True]


# --- choosing a collector ---------------------------------------------------------------------


def collector(
    collector_id: str,
    assigned: int,
    capacity: int = 10,
    *,
    skills: tuple[str, ...] = (),
    languages: tuple[str, ...] = (),
    regions: tuple[str, ...] = (),
) -> CollectorLoad:
    return CollectorLoad(
        collector_id=collector_id,
        skills=frozenset(skills),
        languages=frozenset(languages),
        regions=frozenset(regions),
        capacity=capacity,
        assigned=assigned,
    )


def chosen_id(
    candidates: list[CollectorLoad],
    *,
    needs_skill: str | None = None,
    language: str | None = None,
    region: str | None = None,
) -> str | None:
    found = choose_collector(
        candidates=candidates, needs_skill=needs_skill, language=language, region=region
    )
    return None if found is None else found.collector_id


def test_least_loaded_by_share_of_capacity_wins() -> None:
    # a: 5 of 10 = 50%; b: 8 of 20 = 40% -- more cases, but a smaller share.
    assert chosen_id([collector("a", 5, 10), collector("b", 8, 20)]) == "b"
    assert chosen_id([collector("a", 3, 10), collector("b", 8, 20)]) == "a"


def test_full_collectors_are_skipped() -> None:
    assert chosen_id([collector("a", 10, 10), collector("b", 19, 20)]) == "b"
    assert chosen_id([collector("a", 12, 10), collector("b", 19, 20)]) == "b"  # over capacity
    assert chosen_id([collector("a", 0, 0), collector("b", 19, 20)]) == "b"  # no capacity
    assert chosen_id([collector("a", 10, 10), collector("b", 20, 20)]) is None


def test_the_chosen_collector_is_returned_as_is() -> None:
    b = collector("b", 1, 10, skills=("early",))
    assert choose_collector(candidates=[b], needs_skill="early", language=None, region=None) is b


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"needs_skill": "legal"}, "legal_5"),
        ({"needs_skill": "early"}, "early_1"),
        ({"needs_skill": "unknown"}, "any_6"),  # only the "takes any" collector
        ({"needs_skill": None}, "early_1"),  # no requirement, no filter
        ({"language": "de"}, "early_1"),
        ({"language": "fr"}, "legal_5"),
        ({"language": "es"}, "any_6"),
        ({"region": "north"}, "early_1"),
        ({"region": "south"}, "legal_5"),
        ({"needs_skill": "legal", "language": "de"}, "any_6"),
        ({"needs_skill": "early", "region": "south"}, "any_6"),
        ({"needs_skill": "legal", "language": "fr", "region": "south"}, "legal_5"),
    ],
)
def test_skill_language_and_region_filters(kwargs: dict[str, str | None], expected: str) -> None:
    candidates = [
        collector("early_1", 1, skills=("early",), languages=("de", "en"), regions=("north",)),
        collector("legal_5", 5, skills=("legal",), languages=("fr",), regions=("south",)),
        collector("any_6", 6),  # nothing listed: takes any skill, language and region
    ]
    assert chosen_id(candidates, **kwargs) == expected


def test_nobody_fits() -> None:
    candidates = [
        collector("a", 1, skills=("early",), languages=("de",)),
        collector("b", 1, skills=("legal",), languages=("fr",)),
        collector("c", 10, 10),  # would take anything, but is full
    ]
    assert chosen_id(candidates, needs_skill="legal", language="de") is None
    assert chosen_id([]) is None


def test_ties_on_share_go_to_fewer_assigned_then_to_the_id() -> None:
    # 1 of 2 and 2 of 4 are both 50%: the one with fewer cases wins, whatever the order.
    assert chosen_id([collector("a", 2, 4), collector("b", 1, 2)]) == "b"
    assert chosen_id([collector("b", 1, 2), collector("a", 2, 4)]) == "b"
    # Same share and count: the smaller id wins, whatever the order.
    assert chosen_id([collector("c2", 3, 10), collector("c1", 3, 10)]) == "c1"
    assert chosen_id([collector("c1", 3, 10), collector("c2", 3, 10)]) == "c1"


collectors = st.lists(
    st.builds(
        collector,
        st.text(alphabet="abcdef", min_size=1, max_size=3),
        st.integers(min_value=0, max_value=12),
        st.integers(min_value=0, max_value=12),
        skills=st.lists(st.sampled_from(["early", "late", "legal"]), max_size=2).map(tuple),
        languages=st.lists(st.sampled_from(["de", "en"]), max_size=2).map(tuple),
        regions=st.lists(st.sampled_from(["north", "south"]), max_size=2).map(tuple),
    ),
    max_size=8,
    unique_by=lambda c: c.collector_id,
)


@PROPERTY
@given(
    candidates=collectors,
    needs_skill=st.sampled_from([None, "early", "legal"]),
    language=st.sampled_from([None, "de", "en"]),
    region=st.sampled_from([None, "north"]),
    data=st.data(),
)
def test_choice_is_the_least_loaded_suitable_collector_in_any_order(
    candidates: list[CollectorLoad],
    needs_skill: str | None,
    language: str | None,
    region: str | None,
    data: st.DataObject,
) -> None:
    def suitable(c: CollectorLoad) -> bool:
        return (
            c.assigned < c.capacity
            and (needs_skill is None or not c.skills or needs_skill in c.skills)
            and (language is None or not c.languages or language in c.languages)
            and (region is None or not c.regions or region in c.regions)
        )

    found = choose_collector(
        candidates=candidates, needs_skill=needs_skill, language=language, region=region
    )
    fitting = [c for c in candidates if suitable(c)]
    if not fitting:
        assert found is None
        return
    assert found is not None
    assert suitable(found)
    for other in fitting:  # exact comparison of shares by cross-multiplying
        assert found.assigned * other.capacity <= other.assigned * found.capacity
    shuffled = data.draw(st.permutations(candidates))
    again = choose_collector(
        candidates=shuffled, needs_skill=needs_skill, language=language, region=region
    )
    assert again is not None
    assert again.collector_id == found.collector_id
