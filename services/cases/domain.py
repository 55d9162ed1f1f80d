"""Pure case rules: days past due, buckets, balances. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

#: Default DPD bucket ranges (inclusive), from the operating plans; 0 means "current".
DEFAULT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1-7", 1, 7),
    ("8-15", 8, 15),
    ("16-30", 16, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("180+", 181, None),
)


def days_past_due(*, due_date: date, today: date) -> int:
    """Whole days since the due date; 0 on or before it."""
    return max(0, (today - due_date).days)


def dpd_bucket(
    *, days: int, buckets: tuple[tuple[str, int, int | None], ...] = DEFAULT_BUCKETS
) -> str:
    """Name of the bucket holding `days` ("current" for 0)."""
    if days < 0:
        raise ValueError("days past due cannot be negative")
    for name, low, high in buckets:
        if days >= low and (high is None or days <= high):
            return name
    return "current"


@dataclass(frozen=True)
class Balance:
    """What the debtor owes, by component."""

    principal: Decimal
    interest: Decimal
    fees: Decimal

    @property
    def outstanding(self) -> Decimal:
        return self.principal + self.interest + self.fees
