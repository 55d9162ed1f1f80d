"""Compliance service settings (env prefix COMPLIANCE_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ComplianceSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8004."""

    model_config = SettingsConfigDict(env_prefix="COMPLIANCE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/compliance.db"
    port: int = 8004
    verify_chunk_size: int = 5000
