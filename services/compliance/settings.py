"""Compliance service settings (env prefix COMPLIANCE_)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ComplianceSettings(ServiceSettings):
    """Defaults: SQLite under ./var, HTTP on 8004."""

    model_config = SettingsConfigDict(env_prefix="COMPLIANCE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/compliance.db"
    port: int = 8004
    verify_chunk_size: int = 5000
    # Key of the keyed hashes that replace personal data in the log. Set a secret in
    # production (COMPLIANCE_PII_KEY); the default only suits the embedded demo.
    pii_key: SecretStr = SecretStr("qingshou-demo-pii-key-change-me")
    # Ed25519 seed (64 hex) signing the checkpoints. Set a secret in production
    # (COMPLIANCE_CHECKPOINT_KEY); the default only suits the embedded demo.
    checkpoint_key: SecretStr = SecretStr("5f" * 32)
    checkpoint_interval_s: float = Field(default=30.0, gt=0)
