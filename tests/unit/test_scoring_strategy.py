"""Tiers, early-warning levels, priority and the strategy table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.scoring.domain import (
    DEFAULT_STRATEGY,
    EarlyWarning,
    StrategyInputs,
    StrategyRule,
    TierCutoffs,
    Treatment,
    early_warning_for,
    recommend,
    scorecard_priority,
    tier_for,
)
from shared.contracts import RiskTier


@pytest.mark.parametrize(
    ("pd_value", "tier"),
    [(0.0, RiskTier.LOW), (0.0699, RiskTier.LOW), (0.07, RiskTier.MEDIUM), (0.2, RiskTier.HIGH)],
)
def test_tier_cutoffs(pd_value: float, tier: RiskTier) -> None:
    assert tier_for(probability_of_default=pd_value, cutoffs=TierCutoffs()) is tier


def test_cutoffs_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        TierCutoffs(high=0.05, medium=0.1)


@pytest.mark.parametrize(
    ("pd_value", "dpd", "level"),
    [
        (0.01, 0, EarlyWarning.BLUE),
        (0.06, 0, EarlyWarning.YELLOW),
        (0.01, 8, EarlyWarning.YELLOW),
        (0.16, 0, EarlyWarning.ORANGE),
        (0.01, 31, EarlyWarning.ORANGE),
        (0.31, 0, EarlyWarning.RED),
        (0.01, 91, EarlyWarning.RED),
    ],
)
def test_early_warning(pd_value: float, dpd: int, level: EarlyWarning) -> None:
    assert early_warning_for(probability_of_default=pd_value, days_past_due=dpd) is level


def test_priority_rises_with_risk_amount_and_lateness() -> None:
    base = scorecard_priority(
        probability_of_default=0.1, amount_outstanding=Decimal(10_000), days_past_due=10
    )
    assert base == pytest.approx(0.4 * 10 + 0.3 * 1.0 + 0.3 * 10)
    assert (
        scorecard_priority(
            probability_of_default=0.2, amount_outstanding=Decimal(10_000), days_past_due=10
        )
        > base
    )


def case(
    dpd: int, amount: int = 5_000, tier: RiskTier = RiskTier.LOW, **kw: object
) -> StrategyInputs:
    return StrategyInputs(
        days_past_due=dpd,
        amount_outstanding=Decimal(amount),
        risk_tier=tier,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("inputs", "treatment", "rule"),
    [
        (case(3), Treatment.SMS_REMINDER, "early-reminder"),
        (case(12, tier=RiskTier.LOW), Treatment.SMS_REMINDER, "low-risk-light-touch"),
        (case(12, tier=RiskTier.MEDIUM), Treatment.CALL, "phone-collection"),
        (case(40, tier=RiskTier.MEDIUM), Treatment.SETTLEMENT_OFFER, "medium-risk-negotiate"),
        (case(40, amount=80_000), Treatment.FIELD_VISIT, "30-plus-specialist"),
        (
            case(45, small_business=True),
            Treatment.RESTRUCTURING_OFFER,
            "small-business-restructure",
        ),
        (case(70, tier=RiskTier.HIGH), Treatment.LITIGATION, "high-risk-legal-first"),
        (case(70), Treatment.LAWYERS_LETTER, "over-60-assess-litigation"),
        (
            case(90, collateral_type="real_estate"),
            Treatment.ASSET_DISPOSAL,
            "real-estate-collateral-late",
        ),
        (case(35, broken_promises=2), Treatment.LAWYERS_LETTER, "broken-promises-legal"),
    ],
)
def test_default_strategy_table(inputs: StrategyInputs, treatment: Treatment, rule: str) -> None:
    chosen = recommend(inputs)
    assert (chosen.treatment, chosen.name) == (treatment, rule)


def test_a_table_without_a_catch_all_is_an_error() -> None:
    rules = (StrategyRule(name="only-late", treatment=Treatment.CALL, dpd_min=30),)
    assert recommend(case(31), rules).name == "only-late"
    with pytest.raises(ValueError, match="catch-all"):
        recommend(case(3), rules)
    assert DEFAULT_STRATEGY[-1].treatment is Treatment.CALL
