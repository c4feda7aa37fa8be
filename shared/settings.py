"""Settings common to every service: environment variables (and ``.env``) prefixed ``CLM_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka.admin import TopicConfig

_PLACEHOLDER_TOKENS = {"changeme", "change-me", "secret", "admin", "token", "test"}


class ServiceSettings(BaseSettings):
    """The base every service's settings class extends."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, description="External PostgreSQL URL; unset = the embedded server."
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="External Kafka bootstrap servers; unset = the embedded broker."
    )
    data_dir: Path = Field(default=Path(".clm"), description="Where embedded data lives.")
    admin_token: SecretStr | None = Field(default=None, description="Admin bearer token.")
    dev_mode: bool = Field(default=False, description="Set by `clm run`: relaxes safety checks.")
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer (Apache Kafka yes; Tansu does not support it).",
    )
    kafka_topic_partitions: int = Field(default=8, ge=1)
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="Consumer group session timeout; a group join takes about half of it.",
    )
    kafka_topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=60_000)
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of each topic created at start (3 on a production cluster).",
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of the topics created at start (unset = the "
        "broker's default; 2 with a replication factor of 3).",
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply this service's migrations when it starts."
    )
    db_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Give up opening a PostgreSQL connection after this."
    )
    db_command_timeout_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Give up on a PostgreSQL statement after this (client side; 0 = never).",
    )
    unavailable_after_seconds: float = Field(
        default=1.0,
        gt=0,
        description="A request still waiting after this long checks PostgreSQL (and Kafka "
        "on ingest) with the same timeout, and answers 503 if one does not answer.",
    )
    retry_after_seconds: int = Field(default=2, ge=1, description="Retry-After sent with 429/503.")

    @model_validator(mode="after")
    def _check_topic_replicas(self) -> ServiceSettings:
        isr = self.kafka_min_insync_replicas
        if isr is not None and isr > self.kafka_replication_factor:
            raise ValueError(
                f"CLM_KAFKA_MIN_INSYNC_REPLICAS ({isr}) is above CLM_KAFKA_REPLICATION_FACTOR "
                f"({self.kafka_replication_factor}): no write could ever be acknowledged"
            )
        return self

    def topic_config(self) -> TopicConfig:
        """How the topics created at start are configured."""
        return TopicConfig(
            partitions=self.kafka_topic_partitions,
            retention_ms=self.kafka_topic_retention_ms,
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
        )

    @model_validator(mode="after")
    def _refuse_placeholder_token(self) -> ServiceSettings:
        token = self.admin_token.get_secret_value() if self.admin_token else None
        if not self.dev_mode and token is not None and token.lower() in _PLACEHOLDER_TOKENS:
            raise ValueError("CLM_ADMIN_TOKEN is a placeholder; set a real secret")
        return self

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("CLM_DATABASE_URL is not set (use `clm run` for the embedded one)")
        return self.database_url

    def require_kafka_bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise RuntimeError(
                "CLM_KAFKA_BOOTSTRAP is not set (use `clm run` for the embedded one)"
            )
        return self.kafka_bootstrap

    def require_admin_token(self) -> str:
        if self.admin_token is None or not self.admin_token.get_secret_value():
            raise RuntimeError("CLM_ADMIN_TOKEN is not set")
        return self.admin_token.get_secret_value()
