"""Contact service settings (env prefix CONTACT_)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ContactSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8003."""

    model_config = SettingsConfigDict(env_prefix="CONTACT_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/contact.db"
    port: int = 8003
    rule_packs: list[str] = Field(
        default=["cn"],
        description="Rule packs in force: cn, us-federal, us-ma (with us-federal), uk.",
    )

    @field_validator("rule_packs")
    @classmethod
    def _known_packs(cls, value: list[str]) -> list[str]:
        from shared.rulepacks.engine import PACKS

        unknown = [name for name in value if name not in PACKS]
        if unknown or not value:
            raise ValueError(f"unknown rule packs {unknown}; choose from {sorted(PACKS)}")
        return value
