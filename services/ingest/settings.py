from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    ingest_port: int = Field(default=8000, description="HTTP port of the Tracking API.")
    dedupe_hours: int = Field(
        default=48, ge=24, description="How long an accepted messageId is remembered per source."
    )
    max_inflight_requests: int = Field(
        default=256, ge=1, description="Requests waiting on Kafka at once before answering 429."
    )
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    write_key_cache_seconds: float = Field(default=10.0, ge=0)
    rejected_retention_days: int = Field(
        default=30, ge=1, description="Days rejected input is kept for GET /v1/rejected."
    )
    event_journal: bool = Field(
        default=False,
        description="Also keep every accepted event in PostgreSQL (ingest.journal) until the "
        "trigger engine has consumed it, so that a broker which loses data (the embedded one "
        "keeps everything in memory) can be refilled. `clm run` turns it on with its embedded "
        "broker and maintains the journal; leave it off with a replicated Kafka.",
    )
    storefront_consumer: bool = Field(
        default=True, description="Consume the storefront.events topic."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (comma-separated, e.g. https://shop.example) whose pages may call "
        "the Tracking API from a browser; `*` allows any. Default: none.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value
