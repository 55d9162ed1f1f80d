"""Contact service settings (env prefix CONTACT_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ContactSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8003."""

    model_config = SettingsConfigDict(env_prefix="CONTACT_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/contact.db"
    port: int = 8003
