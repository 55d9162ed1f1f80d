"""Pure scoring rules. The first model is the operating plans' priority rule; the scorecard
(WoE logistic regression with reason codes) replaces it in its own issue and keeps this one as
the fallback model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.contracts import RiskTier

RULE_MODEL_ID = "priority-rule"
RULE_MODEL_VERSION = "1"


@dataclass(frozen=True)
class RuleInputs:
    days_past_due: int
    amount_outstanding: Decimal
    industry_risk: float


@dataclass(frozen=True)
class RuleScore:
    priority: float
    risk_tier: RiskTier
    reason_codes: tuple[str, ...]


def rule_priority(inputs: RuleInputs) -> float:
    """priority = 0.4·DPD + 0.3·(amount / 1000) + 0.3·industry_risk, rounded to 4 places."""
    value = (
        0.4 * inputs.days_past_due
        + 0.3 * float(inputs.amount_outstanding / Decimal(1000))
        + 0.3 * inputs.industry_risk
    )
    return round(value, 4)


def rule_tier(inputs: RuleInputs) -> RiskTier:
    """High past 60 DPD or from 50,000 owed; medium past 15 DPD or from 10,000; else low.

    The DPD cut points follow the stage table (>60: litigation review, 16-60: phone and
    specialist collection); the amount cut points follow "amount < 50,000: phone collection".
    """
    if inputs.days_past_due > 60 or inputs.amount_outstanding >= 50_000:
        return RiskTier.HIGH
    if inputs.days_past_due > 15 or inputs.amount_outstanding >= 10_000:
        return RiskTier.MEDIUM
    return RiskTier.LOW


def score_by_rule(inputs: RuleInputs) -> RuleScore:
    """Priority and tier, with the reasons that set the tier (PIPL art. 24: explainable)."""
    reasons: list[str] = []
    if inputs.days_past_due > 60:
        reasons.append("DPD_OVER_60")
    elif inputs.days_past_due > 15:
        reasons.append("DPD_OVER_15")
    if inputs.amount_outstanding >= 50_000:
        reasons.append("AMOUNT_50K_OR_MORE")
    elif inputs.amount_outstanding >= 10_000:
        reasons.append("AMOUNT_10K_OR_MORE")
    return RuleScore(
        priority=rule_priority(inputs), risk_tier=rule_tier(inputs), reason_codes=tuple(reasons)
    )
