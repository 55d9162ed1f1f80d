"""Cases service settings (env prefix CASES_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CasesSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8001."""

    model_config = SettingsConfigDict(env_prefix="CASES_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/cases.db"
    port: int = 8001
