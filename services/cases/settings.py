"""Cases service settings (env prefix CASES_)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.cases import domain
from shared.settings import ServiceSettings


class CasesSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8001."""

    model_config = SettingsConfigDict(env_prefix="CASES_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/cases.db"
    port: int = 8001
    dpd_buckets: str = Field(
        default="1-7,8-15,16-30,31-60,61-90,91-180,181+",
        description="DPD bucket ranges, contiguous from 1 and open-ended at the top.",
    )
    ptp_grace_days: int = Field(default=3, ge=0, le=30)
    ptp_max_days_ahead: int = Field(default=60, ge=1, le=365)
    daily_run_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the promise/hold/DPD run looks for work."
    )
    max_import_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Upload size cap.")
    import_dir: str = Field(default="var/imports", description="Where uploads are spooled.")

    @field_validator("dpd_buckets")
    @classmethod
    def _valid_buckets(cls, value: str) -> str:
        domain.parse_buckets(value)
        return value
