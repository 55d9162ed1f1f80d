"""Days past due and buckets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.cases.domain import Balance, days_past_due, dpd_bucket


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


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        dpd_bucket(days=-1)


def test_balance_adds_components_exactly() -> None:
    assert Balance(Decimal("0.10"), Decimal("0.20"), Decimal("0")).outstanding == Decimal("0.30")
