"""Compliance service settings (env prefix COMPLIANCE_)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.contracts import Severity
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
    # The rule packs the re-check applies until contact publishes a policy (contact's default).
    default_packs: tuple[str, ...] = ("cn",)
    # Violations of these severities ask cases to hold contact on the case pending review.
    hold_on_severities: frozenset[Severity] = frozenset({Severity.CRITICAL})
    # Keys the QA sample (at least 16 bytes): without it nobody can predict which contacts
    # will be reviewed. Set a secret in production (COMPLIANCE_QA_SALT).
    qa_salt: SecretStr = SecretStr("qingshou-demo-qa-salt-change-me")
    qa_time_zone: str = "Asia/Shanghai"  # weeks and months of the QA sample
    # Retention (Reg F 1006.100: three years after the last activity on the debt): entries of
    # a case are purged this many days after its last entry; per kind (event type prefix,
    # e.g. {"complaint.": 1825}) longer or shorter. Purged entries keep their hashes.
    retention_days: int = Field(default=3 * 365, ge=1)
    retention_days_by_kind: dict[str, int] = Field(default_factory=dict)
    # A complaint text shared by this many debtors is a campaign.
    campaign_min_debtors: int = Field(default=5, ge=2)
