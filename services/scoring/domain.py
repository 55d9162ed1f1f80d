"""Pure scoring rules. The first model is the operating plans' priority rule; the scorecard
(WoE logistic regression with reason codes) replaces it in its own issue and keeps this one as
the fallback model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


# ---------------------------------------------------------------------------------------------
# Risk tier, early warning, priority and treatment from a scorecard's probability of default.
# ---------------------------------------------------------------------------------------------


class EarlyWarning(StrEnum):
    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"


class Treatment(StrEnum):
    SMS_REMINDER = "sms_reminder"
    CALL = "call"
    FIELD_VISIT = "field_visit"
    LAWYERS_LETTER = "lawyers_letter"
    LITIGATION = "litigation"
    ASSET_DISPOSAL = "asset_disposal"
    RESTRUCTURING_OFFER = "restructuring_offer"
    SETTLEMENT_OFFER = "settlement_offer"


class TierCutoffs(BaseModel):
    """PD from which a case is high / medium risk (GMSC's base bad rate is about 6.7%)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high: float = Field(default=0.20, gt=0, lt=1)
    medium: float = Field(default=0.07, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> TierCutoffs:
        if not self.medium < self.high:
            raise ValueError("the medium cut-off must be below the high one")
        return self


def tier_for(*, probability_of_default: float, cutoffs: TierCutoffs) -> RiskTier:
    if probability_of_default >= cutoffs.high:
        return RiskTier.HIGH
    if probability_of_default >= cutoffs.medium:
        return RiskTier.MEDIUM
    return RiskTier.LOW


def early_warning_for(*, probability_of_default: float, days_past_due: int) -> EarlyWarning:
    """Red: PD >= 30% or 90+ DPD; orange: PD >= 15% or 31+; yellow: PD >= 5% or 8+; else blue."""
    if probability_of_default >= 0.30 or days_past_due > 90:
        return EarlyWarning.RED
    if probability_of_default >= 0.15 or days_past_due > 30:
        return EarlyWarning.ORANGE
    if probability_of_default >= 0.05 or days_past_due > 7:
        return EarlyWarning.YELLOW
    return EarlyWarning.BLUE


def scorecard_priority(
    *, probability_of_default: float, amount_outstanding: Decimal, days_past_due: int
) -> float:
    """The plans' priority rule with the model's risk in place of the industry index:
    0.4·DPD + 0.3·(expected loss / 1000) + 0.3·(100·PD), where expected loss = PD·amount."""
    expected_loss = probability_of_default * float(amount_outstanding)
    value = 0.4 * days_past_due + 0.3 * (expected_loss / 1000) + 0.3 * 100 * probability_of_default
    return round(value, 4)


class StrategyRule(BaseModel):
    """One row of the strategy table; every condition given must hold. First match wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    treatment: Treatment
    dpd_min: int | None = Field(default=None, ge=0)
    dpd_max: int | None = Field(default=None, ge=0)
    amount_min: Decimal | None = Field(default=None, ge=0)
    amount_max: Decimal | None = Field(default=None, ge=0)
    tiers: list[RiskTier] | None = None
    collateral: list[str] | None = None
    small_business: bool | None = None
    broken_promises_min: int | None = Field(default=None, ge=0)

    def matches(self, case: StrategyInputs) -> bool:
        checks = (
            self.dpd_min is None or case.days_past_due >= self.dpd_min,
            self.dpd_max is None or case.days_past_due <= self.dpd_max,
            self.amount_min is None or case.amount_outstanding >= self.amount_min,
            self.amount_max is None or case.amount_outstanding < self.amount_max,
            self.tiers is None or case.risk_tier in self.tiers,
            self.collateral is None or (case.collateral_type or "none") in self.collateral,
            self.small_business is None or case.small_business == self.small_business,
            self.broken_promises_min is None or case.broken_promises >= self.broken_promises_min,
        )
        return all(checks)


@dataclass(frozen=True)
class StrategyInputs:
    days_past_due: int
    amount_outstanding: Decimal
    risk_tier: RiskTier
    collateral_type: str | None = None
    small_business: bool = False
    broken_promises: int = 0


#: Defaults from the operating plans' stage table (DOMAIN.md); a tenant replaces them by config.
DEFAULT_STRATEGY: tuple[StrategyRule, ...] = (
    StrategyRule(
        name="real-estate-collateral-late",
        treatment=Treatment.ASSET_DISPOSAL,
        dpd_min=61,
        collateral=["real_estate"],
    ),
    StrategyRule(
        name="small-business-restructure",
        treatment=Treatment.RESTRUCTURING_OFFER,
        dpd_min=30,
        small_business=True,
    ),
    StrategyRule(
        name="high-risk-legal-first",
        treatment=Treatment.LITIGATION,
        dpd_min=61,
        tiers=[RiskTier.HIGH],
    ),
    StrategyRule(
        name="broken-promises-legal",
        treatment=Treatment.LAWYERS_LETTER,
        dpd_min=30,
        broken_promises_min=2,
    ),
    StrategyRule(name="over-60-assess-litigation", treatment=Treatment.LAWYERS_LETTER, dpd_min=61),
    StrategyRule(
        name="medium-risk-negotiate",
        treatment=Treatment.SETTLEMENT_OFFER,
        dpd_min=30,
        tiers=[RiskTier.MEDIUM],
    ),
    StrategyRule(
        name="30-plus-specialist",
        treatment=Treatment.FIELD_VISIT,
        dpd_min=30,
        amount_min=Decimal(50_000),
    ),
    StrategyRule(name="early-reminder", treatment=Treatment.SMS_REMINDER, dpd_max=7),
    StrategyRule(
        name="low-risk-light-touch",
        treatment=Treatment.SMS_REMINDER,
        dpd_max=15,
        tiers=[RiskTier.LOW],
    ),
    StrategyRule(name="phone-collection", treatment=Treatment.CALL),
)


def recommend(
    case: StrategyInputs, rules: tuple[StrategyRule, ...] = DEFAULT_STRATEGY
) -> StrategyRule:
    """The first rule that matches; the table must end with a catch-all."""
    for rule in rules:
        if rule.matches(case):
            return rule
    raise ValueError("the strategy table has no rule for this case (add a catch-all)")
