"""Pure case rules: days past due, buckets, stages, payment allocation, promises, plans and
settlement limits. No I/O: every function takes the dates and amounts it needs."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

Bucket = tuple[str, int, int | None]

#: Default DPD bucket ranges (inclusive), from the operating plans; 0 days means "current".
DEFAULT_BUCKETS: tuple[Bucket, ...] = (
    ("1-7", 1, 7),
    ("8-15", 8, 15),
    ("16-30", 16, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("180+", 181, None),
)
CURRENT = "current"


def parse_buckets(spec: str) -> tuple[Bucket, ...]:
    """Buckets from a spec such as "1-7,8-15,16-30,31-60,61-90,91-180,181+".

    Ranges must start at 1, be contiguous and end open-ended, so every DPD has one bucket."""
    buckets: list[Bucket] = []
    expected_low = 1
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("bucket spec is empty")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part.endswith("+"):
            if not last:
                raise ValueError(f"open-ended bucket {part!r} must be the last one")
            low, high = int(part[:-1]), None
        else:
            low_text, sep, high_text = part.partition("-")
            if not sep:
                raise ValueError(f"bucket {part!r} is not LOW-HIGH or LOW+")
            low, high = int(low_text), int(high_text)
            if high < low:
                raise ValueError(f"bucket {part!r} ends before it starts")
            if last:
                raise ValueError("the last bucket must be open-ended (e.g. 181+)")
        if low != expected_low:
            raise ValueError(f"bucket {part!r} should start at {expected_low}: gaps or overlaps")
        buckets.append((part, low, high))
        expected_low = (high or low) + 1
    return tuple(buckets)


def days_past_due(*, due_date: date, today: date) -> int:
    """Whole days since the due date; 0 on or before it."""
    return max(0, (today - due_date).days)


def dpd_bucket(*, days: int, buckets: Sequence[Bucket] = DEFAULT_BUCKETS) -> str:
    """Name of the bucket holding `days` ("current" for 0)."""
    if days < 0:
        raise ValueError("days past due cannot be negative")
    for name, low, high in buckets:
        if days >= low and (high is None or days <= high):
            return name
    return CURRENT


def due_date_range(
    *, bucket: str, today: date, buckets: Sequence[Bucket] = DEFAULT_BUCKETS
) -> tuple[date | None, date | None]:
    """The due dates whose DPD falls in `bucket` today, as (earliest, latest) inclusive bounds
    (None = unbounded), so a bucket filter is a range scan on the stored due date."""
    if bucket == CURRENT:
        return today, None
    for name, low, high in buckets:
        if name == bucket:
            earliest = None if high is None else today - timedelta(days=high)
            return earliest, today - timedelta(days=low)
    raise ValueError(f"unknown bucket {bucket!r}")


class Stage(StrEnum):
    """Where the case is in its life: DPD drives the first three, people the rest."""

    REMINDER = "reminder"
    EARLY = "early"
    LATE = "late"
    LEGAL = "legal"
    RESTRUCTURING = "restructuring"
    CLOSED = "closed"


#: Stages a person puts a case in; the daily DPD roll never moves a case out of them.
MANUAL_STAGES = frozenset({Stage.LEGAL, Stage.RESTRUCTURING, Stage.CLOSED})


def stage_for(*, days: int, current: Stage | None = None) -> Stage:
    """DPD <= 7 reminders, 8-30 early (first phone collection), 31+ late (specialist team)."""
    if current in MANUAL_STAGES:
        assert current is not None
        return current
    if days <= 7:
        return Stage.REMINDER
    if days <= 30:
        return Stage.EARLY
    return Stage.LATE


class Closure(StrEnum):
    """How a case ends."""

    SETTLED = "settled"
    RESTRUCTURED = "restructured"
    WRITTEN_OFF = "written_off"
    SOLD = "sold"
    LEGAL = "legal"
    RECALLED = "recalled"


@dataclass(frozen=True)
class Balance:
    """What the debtor owes, by component."""

    principal: Decimal
    interest: Decimal
    fees: Decimal

    @property
    def outstanding(self) -> Decimal:
        return self.principal + self.interest + self.fees


@dataclass(frozen=True)
class Allocation:
    """How one payment was applied. `unapplied` is an overpayment, kept for refund."""

    fees: Decimal
    interest: Decimal
    principal: Decimal
    unapplied: Decimal

    @property
    def applied(self) -> Decimal:
        return self.fees + self.interest + self.principal


def allocate_payment(*, amount: Decimal, balance: Balance) -> tuple[Allocation, Balance]:
    """Apply a payment fees first, then interest, then principal (the usual waterfall: the
    principal is paid down last so the cost of the debt stops growing last, which is why
    regulators scrutinise it; the order is a rule here, not scattered in callers)."""
    if amount <= 0:
        raise ValueError("a payment must be positive")
    remaining = amount
    fees = min(remaining, balance.fees)
    remaining -= fees
    interest = min(remaining, balance.interest)
    remaining -= interest
    principal = min(remaining, balance.principal)
    remaining -= principal
    after = Balance(
        principal=balance.principal - principal,
        interest=balance.interest - interest,
        fees=balance.fees - fees,
    )
    return Allocation(fees=fees, interest=interest, principal=principal, unapplied=remaining), after


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def arrears_due_date(
    *, first_due_date: date, installment_amount: Decimal | None, credited: Decimal
) -> date:
    """The oldest unpaid due date of an instalment loan after `credited` has been paid.

    DPD counts from the oldest instalment not yet covered: each whole instalment paid moves it
    one month on from the first missed one. Without an instalment amount (a single overdue
    sum) only payment in full ends the delinquency, so the date does not move."""
    if installment_amount is None or installment_amount <= 0 or credited <= 0:
        return first_due_date
    covered = int((credited / installment_amount).to_integral_value(rounding=ROUND_DOWN))
    return add_months(first_due_date, covered)


class PromiseStatus(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Installment:
    """One amount due on one date (a promise to pay is a schedule of one)."""

    due_date: date
    amount: Decimal


def evaluate_schedule(
    *,
    installments: Sequence[Installment],
    payments: Sequence[tuple[date, Decimal]],
    today: date,
    grace_days: int,
) -> list[PromiseStatus]:
    """Kept, broken or still pending, for each instalment in date order.

    Payments count cumulatively: instalment k is kept once the payments made by its due date
    plus grace cover every instalment up to k (an early or larger payment carries forward).
    It is broken only when its grace period has fully passed (`today` after due + grace)."""
    ordered = sorted(payments)
    statuses: list[PromiseStatus] = []
    owed = ZERO
    for item in installments:
        owed += item.amount
        deadline = item.due_date + timedelta(days=grace_days)
        paid_by_deadline = sum((amt for day, amt in ordered if day <= deadline), ZERO)
        if paid_by_deadline >= owed:
            statuses.append(PromiseStatus.KEPT)
        elif today > deadline:
            statuses.append(PromiseStatus.BROKEN)
        else:
            statuses.append(PromiseStatus.PENDING)
    return statuses


def parse_plan_shape(shape: str) -> tuple[int, ...]:
    """ "3+6+12" → (3, 6, 12): a stepped plan of 3, then 6, then 12 monthly instalments."""
    try:
        parts = tuple(int(p) for p in shape.split("+"))
    except ValueError:
        raise ValueError(f"plan shape {shape!r} is not like 3+6+12") from None
    if not parts or any(p < 1 for p in parts) or sum(parts) > 120:
        raise ValueError(f"plan shape {shape!r}: each step needs ≥ 1 month, 120 in all at most")
    return parts


def build_schedule(
    *,
    total: Decimal,
    first_due: date,
    shape: Sequence[int],
    step_weights: Sequence[Decimal] | None = None,
) -> list[Installment]:
    """Monthly instalments for `total`, in steps (e.g. 3+6+12). Each step's monthly amount is
    proportional to its weight (equal by default; rising weights give step-wise relief at the
    start). Rounded down to the cent, with the rounding remainder on the last instalment, so
    the schedule always sums to `total` exactly."""
    if total <= 0:
        raise ValueError("a plan must cover a positive amount")
    weights = list(step_weights) if step_weights is not None else [Decimal(1)] * len(shape)
    if len(weights) != len(shape) or any(w <= 0 for w in weights):
        raise ValueError("one positive weight per step")
    units = sum((w * n for w, n in zip(weights, shape, strict=True)), Decimal(0))
    amounts: list[Decimal] = []
    for weight, months in zip(weights, shape, strict=True):
        # total * weight first: dividing first rounds to 28 digits and can lose a cent.
        monthly = (total * weight / units).quantize(CENT, rounding=ROUND_DOWN)
        amounts.extend([monthly] * months)
    amounts[-1] += total - sum(amounts, ZERO)
    if any(a <= 0 for a in amounts):
        raise ValueError("the plan is too small for this many instalments")
    return [
        Installment(due_date=add_months(first_due, i), amount=amount)
        for i, amount in enumerate(amounts)
    ]


@dataclass(frozen=True)
class Settlement:
    """A lump sum that closes the case, and what is forgiven for it."""

    amount: Decimal
    waived_interest: Decimal
    waived_fees: Decimal
    waived_principal: Decimal

    @property
    def waived(self) -> Decimal:
        return self.waived_interest + self.waived_fees + self.waived_principal


def settlement_offer(
    *,
    balance: Balance,
    interest_waiver: Decimal,
    fees_waiver: Decimal = ZERO,
    principal_waiver: Decimal = ZERO,
) -> Settlement:
    """The lump sum after waiving shares (0 to 1) of each component, e.g. 30% of interest."""
    for share in (interest_waiver, fees_waiver, principal_waiver):
        if not ZERO <= share <= 1:
            raise ValueError("waiver shares are between 0 and 1")
    waived_interest = (balance.interest * interest_waiver).quantize(CENT, rounding=ROUND_DOWN)
    waived_fees = (balance.fees * fees_waiver).quantize(CENT, rounding=ROUND_DOWN)
    waived_principal = (balance.principal * principal_waiver).quantize(CENT, rounding=ROUND_DOWN)
    amount = balance.outstanding - waived_interest - waived_fees - waived_principal
    if amount <= 0:
        raise ValueError("a settlement must still collect something")
    return Settlement(amount, waived_interest, waived_fees, waived_principal)


@dataclass(frozen=True)
class RoleLimits:
    """What a role may approve on its own."""

    max_waiver_share: Decimal
    max_installments: int
    may_waive_principal: bool


#: Default approval limits; a tenant can override them in settings.
DEFAULT_ROLE_LIMITS: dict[str, RoleLimits] = {
    "collector": RoleLimits(Decimal("0.10"), 6, may_waive_principal=False),
    "supervisor": RoleLimits(Decimal("0.30"), 12, may_waive_principal=False),
    "manager": RoleLimits(Decimal("0.50"), 36, may_waive_principal=True),
    "head_of_collections": RoleLimits(Decimal("1.00"), 120, may_waive_principal=True),
}


def approval_problem(
    *,
    role: str,
    outstanding: Decimal,
    waived: Decimal = ZERO,
    waived_principal: Decimal = ZERO,
    installments: int = 1,
    limits: dict[str, RoleLimits] = DEFAULT_ROLE_LIMITS,
) -> str | None:
    """Why `role` may not approve this offer, or None if it may."""
    rule = limits.get(role)
    if rule is None:
        return f"unknown role {role!r}; known roles: {', '.join(sorted(limits))}"
    if waived_principal > 0 and not rule.may_waive_principal:
        return f"a {role} may not waive principal"
    if outstanding > 0 and waived / outstanding > rule.max_waiver_share:
        share = (waived / outstanding * 100).quantize(Decimal("0.1"))
        return (
            f"waiving {share}% of the balance exceeds a {role}'s limit of "
            f"{rule.max_waiver_share * 100:.0f}%"
        )
    if installments > rule.max_installments:
        return f"{installments} instalments exceed a {role}'s limit of {rule.max_installments}"
    return None


@dataclass(frozen=True)
class CollectorLoad:
    """A collector as allocation sees them."""

    collector_id: str
    skills: frozenset[str]
    languages: frozenset[str]
    regions: frozenset[str]
    capacity: int
    assigned: int


def choose_collector(
    *,
    candidates: Sequence[CollectorLoad],
    needs_skill: str | None,
    language: str | None,
    region: str | None,
) -> CollectorLoad | None:
    """The least-loaded collector (by share of capacity) who has the skill, speaks the
    debtor's language and covers the region. A requirement the case doesn't state is no filter,
    and a collector with no skills, languages or regions listed takes any. None when everyone
    suitable is full."""
    best: tuple[float, int, str] | None = None
    chosen: CollectorLoad | None = None
    for c in candidates:
        if c.assigned >= c.capacity:
            continue
        if needs_skill and c.skills and needs_skill not in c.skills:
            continue
        if language and c.languages and language not in c.languages:
            continue
        if region and c.regions and region not in c.regions:
            continue
        key = (c.assigned / c.capacity, c.assigned, c.collector_id)
        if best is None or key < best:
            best, chosen = key, c
    return chosen


def skill_for(*, stage: Stage, treatment: str | None) -> str:
    """The skill a case needs: its recommended treatment if scoring gave one, else its stage."""
    return treatment or stage.value
