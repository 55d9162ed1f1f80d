"""Scoring service settings (env prefix SCORING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.scoring.domain import DEFAULT_STRATEGY, StrategyRule, TierCutoffs
from shared.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8002."""

    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/scoring.db"
    port: int = 8002
    default_model_path: str = Field(
        default="var/models/gmsc-scorecard-1.json",
        description="Registered as champion at start-up when the registry is empty.",
    )
    tier_cutoffs: TierCutoffs = Field(default_factory=TierCutoffs)
    strategy: list[StrategyRule] = Field(
        default_factory=lambda: list(DEFAULT_STRATEGY),
        description="The strategy table (JSON list); first matching rule wins.",
    )
    rescore_interval_hours: float = Field(default=168.0, gt=0)
