"""Cases service settings (env prefix CASES_)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.cases import domain
from shared.crypto import FieldCipher, KeyConfigError
from shared.settings import ServiceSettings

# Demo keys for the embedded `make run` and the tests only: anyone can read them here.
DEMO_FIELD_KEY_ID = "demo1"
DEMO_FIELD_KEY = "5c0e7a6d3b1f48e2a9d4c7b6e5f8a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708"
DEMO_INDEX_KEY = "b1d2e3f4a5c6b7a8d9e0f1c2b3a4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2"


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
    financial_retention_days: int = Field(
        default=5 * 365,
        ge=1,
        description="How long after closure a case's financial records (balances, payments, "
        "promises, plans) are kept: an erasure request keeps them, de-identified, until then "
        "(set it to the longest period your accounting and AML laws require).",
    )
    # Field encryption of phones, e-mails, national ids and addresses (AES-256-GCM). Keys are
    # 32 bytes, as 64 hex digits or base64, by key id; new values are written under
    # `field_key_id`, every key in the ring still decrypts (rotate with
    # `python -m services.cases rotate-keys`, then drop the old key). `index_key` keys the
    # blind indexes that make encrypted values searchable; changing it means re-indexing.
    # Set secrets in production (CASES_FIELD_KEYS='{"k2": "..."}', CASES_FIELD_KEY_ID,
    # CASES_INDEX_KEY); the defaults only suit the embedded demo.
    field_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {DEMO_FIELD_KEY_ID: SecretStr(DEMO_FIELD_KEY)}
    )
    field_key_id: str = DEMO_FIELD_KEY_ID
    index_key: SecretStr = SecretStr(DEMO_INDEX_KEY)

    @field_validator("dpd_buckets")
    @classmethod
    def _valid_buckets(cls, value: str) -> str:
        domain.parse_buckets(value)
        return value

    @model_validator(mode="after")
    def _valid_keyring(self) -> CasesSettings:
        try:
            self.field_cipher()
        except KeyConfigError as exc:
            raise ValueError(f"field encryption: {exc}") from None
        return self

    def field_cipher(self) -> FieldCipher:
        """The field cipher these settings describe (fails on a bad keyring)."""
        return FieldCipher(
            keys={kid: key.get_secret_value() for kid, key in self.field_keys.items()},
            active_key_id=self.field_key_id,
            index_key=self.index_key.get_secret_value(),
        )
