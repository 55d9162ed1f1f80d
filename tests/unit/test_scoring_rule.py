"""The first scoring model: the operating plans' priority rule and tier cut points."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.scoring.domain import RuleInputs, rule_priority, rule_tier, score_by_rule
from shared.contracts import RiskTier


def inputs(dpd: int, amount: str, industry: float = 0.0) -> RuleInputs:
    return RuleInputs(days_past_due=dpd, amount_outstanding=Decimal(amount), industry_risk=industry)


def test_priority_formula() -> None:
    # 0.4*30 + 0.3*(25000/1000) + 0.3*60 = 12 + 7.5 + 18
    assert rule_priority(inputs(30, "25000", 60)) == pytest.approx(37.5)
    assert rule_priority(inputs(0, "0", 0)) == 0


def test_priority_grows_with_each_input() -> None:
    base = rule_priority(inputs(10, "1000", 10))
    assert rule_priority(inputs(11, "1000", 10)) > base
    assert rule_priority(inputs(10, "1001", 10)) > base
    assert rule_priority(inputs(10, "1000", 11)) > base


@pytest.mark.parametrize(
    ("dpd", "amount", "tier"),
    [
        (3, "500", RiskTier.LOW),
        (15, "9999.99", RiskTier.LOW),
        (16, "500", RiskTier.MEDIUM),
        (3, "10000", RiskTier.MEDIUM),
        (60, "49999.99", RiskTier.MEDIUM),
        (61, "100", RiskTier.HIGH),
        (1, "50000", RiskTier.HIGH),
    ],
)
def test_tier_boundaries(dpd: int, amount: str, tier: RiskTier) -> None:
    assert rule_tier(inputs(dpd, amount)) is tier


def test_reasons_explain_the_tier() -> None:
    assert score_by_rule(inputs(70, "60000")).reason_codes == ("DPD_OVER_60", "AMOUNT_50K_OR_MORE")
    assert score_by_rule(inputs(3, "10")).reason_codes == ()
