"""Settings common to every service; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import AuthSettings


class ServiceSettings(BaseSettings):
    """Database, bus, HTTP and logging knobs. Defaults suit the embedded broker and SQLite."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    database_url: str = Field(
        default="sqlite+aiosqlite:///var/service.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # The embedded broker rebalances in about session_timeout/2; real Kafka wants >= 6000.
    kafka_session_timeout_ms: int = Field(default=2000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=600, ge=100)
    # The embedded broker waits about fetch_max_wait/2 even when data is ready.
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1)
    kafka_request_timeout_ms: int = Field(default=5000, ge=500)

    consumer_max_retries: int = Field(default=3, ge=0, le=20)
    consumer_retry_backoff_ms: int = Field(default=100, ge=0)
    consumer_batch_max: int = Field(default=500, ge=1)
    consumer_stall_seconds: float = Field(default=10.0, gt=0)
    # How often a consumer re-reads its last record to notice a log replaced by a broker that
    # lost data (the embedded one keeps nothing across restarts); cheap, one fetch per partition.
    consumer_log_check_s: float = Field(default=2.0, gt=0)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_idle_poll_ms: int = Field(default=250, ge=5)
    relay_linger_ms: int = Field(default=5, ge=0)
    relay_probe_interval_s: float = Field(default=2.0, gt=0)
    outbox_retention_hours: float = Field(default=72.0, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Below the 30 s most HTTP clients give up after, so a client hears the 503 and its
    # Retry-After; above what a burst of requests queued behind a consumer batch takes.
    request_db_wait_s: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="SQLite: how long a request waits for the one writer (the process's queue "
        "and the file lock) before a 503 with Retry-After.",
    )
    log_json: bool = True
    log_level: str = "INFO"
    enable_bus: bool = Field(
        default=True, description="Start the consumer and outbox relay with the HTTP app."
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        description="Credentials (API key file, JWT issuer); read from QS_AUTH_* by all services.",
    )
    enable_jobs: bool = Field(
        default=True, description="Run the service's scheduled jobs (e.g. weekly rescoring)."
    )
