"""Settings of the messenger (``CLM_`` environment variables)."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator

from services.messenger.delivery.retry import RetryPolicy
from services.messenger.destinations.secrets import SecretBox, SecretKeySettings
from shared.settings import ServiceSettings


class MessengerSettings(ServiceSettings, SecretKeySettings):
    messenger_port: int = Field(default=8002, description="HTTP port of the ops API.")
    allow_private_destinations: bool = Field(
        default=False,
        description="Allow loopback/private/link-local webhook URLs (development and tests "
        "only; dev mode does not imply it). Cloud metadata addresses stay refused.",
    )
    retry_schedule: list[float] | None = Field(
        default=None,
        description="Seconds to wait before each attempt, e.g. [0, 5, 300]; unset = the "
        "Svix-like default (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).",
    )
    retry_jitter: float = Field(default=0.2, ge=0.0, lt=1.0)
    retry_after_min_seconds: float = Field(default=1.0, ge=0)
    retry_after_max_seconds: float = Field(default=3600.0, ge=0)
    delivery_timeout_seconds: float = Field(default=15.0, gt=0, description="Per attempt.")
    delivery_concurrency: int = Field(
        default=64, ge=1, description="Attempts in flight at once, all destinations together."
    )
    destination_concurrency: int = Field(
        default=10, ge=1, description="Default per-destination limit of attempts in flight."
    )
    claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a claimed delivery stays reserved; after that a claim whose "
        "worker died is picked up again.",
    )
    claim_batch_size: int = Field(default=100, ge=1)
    dispatch_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often due retries are looked for."
    )
    consumer_group: str = Field(default="clm-messenger")
    stats_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often the status gauges are refreshed."
    )
    error_rate_window_seconds: float = Field(default=900.0, gt=0)
    provider_event_tolerance_seconds: int = Field(
        default=300, ge=1, description="Max age of a signed provider callback."
    )
    response_excerpt_bytes: int = Field(
        default=2048, ge=0, description="How much of a receiver's answer an attempt keeps."
    )

    @model_validator(mode="after")
    def _check_retry_policy(self) -> Self:
        self.retry_policy()
        return self

    @model_validator(mode="after")
    def _check_secret_key(self) -> Self:
        self.secret_box()
        return self

    def secret_box(self) -> SecretBox:
        return self.secret_box_for(dev_mode=self.dev_mode)

    def retry_policy(self) -> RetryPolicy:
        extra: dict[str, object] = {}
        if self.retry_schedule is not None:
            extra["schedule"] = tuple(timedelta(seconds=s) for s in self.retry_schedule)
        return RetryPolicy(
            jitter=self.retry_jitter,
            retry_after_min=timedelta(seconds=self.retry_after_min_seconds),
            retry_after_max=timedelta(seconds=self.retry_after_max_seconds),
            timeout=timedelta(seconds=self.delivery_timeout_seconds),
            **extra,
        )
