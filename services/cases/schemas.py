"""HTTP request and response models of the cases API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts import CollateralType, Money, RiskFeatures, TimeZoneName

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])]


class DebtorIn(BaseModel):
    """The person or business that owes the debt."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_ref: str | None = Field(
        default=None, min_length=1, max_length=64, description="Core system's debtor id."
    )
    name: str = Field(min_length=1, max_length=200, examples=["张三"])
    phone: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", examples=["+8613800138000"]
    )
    time_zone: TimeZoneName


class CaseCreate(BaseModel):
    """A delinquent account to open a case for."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "account_id": "LN-2026-000123",
                    "debtor": {
                        "name": "张三",
                        "phone": "+8613800138000",
                        "time_zone": "Asia/Shanghai",
                    },
                    "product": "consumer_loan",
                    "currency": "CNY",
                    "principal": "12000.00",
                    "interest": "350.50",
                    "fees": "0",
                    "due_date": "2026-10-01",
                    "industry_risk": 40,
                    "collateral_type": "none",
                    "small_business": False,
                    "risk_features": {
                        "RevolvingUtilizationOfUnsecuredLines": 0.83,
                        "age": 37,
                        "NumberOfTime30-59DaysPastDueNotWorse": 1,
                        "DebtRatio": 0.42,
                        "MonthlyIncome": 5400,
                        "NumberOfTimes90DaysLate": 0,
                    },
                }
            ]
        },
    )

    account_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    debtor: DebtorIn
    product: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    currency: CurrencyCode
    principal: Money
    interest: Money = Decimal("0.00")
    fees: Money = Decimal("0.00")
    due_date: date
    industry_risk: float = Field(default=50.0, ge=0, le=100, description="Industry risk index.")
    collateral_type: CollateralType = CollateralType.NONE
    small_business: bool = False
    risk_features: RiskFeatures = Field(default_factory=dict)

    @model_validator(mode="after")
    def _owes_something(self) -> CaseCreate:
        if self.principal + self.interest + self.fees <= 0:
            raise ValueError("principal + interest + fees must be greater than zero")
        return self


class DebtorOut(BaseModel):
    id: uuid.UUID
    external_ref: str | None
    name: str
    time_zone: str


class CaseOut(BaseModel):
    """A case as the system of record holds it."""

    id: uuid.UUID
    account_id: str
    status: str
    debtor: DebtorOut
    product: str
    currency: str
    principal: Decimal
    interest: Decimal
    fees: Decimal
    amount_outstanding: Decimal
    due_date: date
    days_past_due: int
    dpd_bucket: str
    industry_risk: float
    collateral_type: CollateralType
    small_business: bool
    risk_features: dict[str, float | str | None]
    opened_at: datetime
