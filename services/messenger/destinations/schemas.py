"""Request and response bodies of ``/v1/destinations``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.messenger.delivery.signing import validate_secret
from services.messenger.delivery.urlguard import MAX_URL_LENGTH

Channel = Literal["email", "sms", "push", "webhook"]


class DestinationIn(BaseModel):
    """A destination as created (``POST``) or replaced (``PUT``)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="http(s) URL of the receiver; private and local addresses are refused",
    )
    secret: str | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_<base64 of 24-64 bytes>). POST: omitted "
        "= generated and shown once. PUT: omitted = unchanged.",
    )
    name: str | None = Field(default=None, max_length=200)
    rate_limit_per_second: float = Field(default=50.0, gt=0, le=100_000)
    max_concurrency: int | None = Field(
        default=None, ge=1, le=1_000, description="attempts in flight at once (default: setting)"
    )
    enabled: bool = True
    default: bool | None = Field(
        default=None,
        description="the channel's default destination (one per channel; setting it moves it "
        "here). POST: omitted = default if the channel has none yet. PUT: omitted = unchanged.",
    )

    @field_validator("secret")
    @classmethod
    def _secret_is_usable(cls, value: str | None) -> str | None:
        return None if value is None else validate_secret(value)


class DestinationOut(BaseModel):
    id: str = Field(description="the id an action (a rule's send step) names as destination")
    name: str | None
    channel: Channel
    url: str
    secret: str = Field(description="masked: whsec_****<last 4>")
    rate_limit_per_second: float
    max_concurrency: int
    enabled: bool
    default: bool
    disabled_reason: str | None = Field(
        description="why it was disabled automatically (410 Gone), if it was"
    )
    created_at: datetime
    updated_at: datetime


class DestinationCreated(DestinationOut):
    secret: str = Field(description="the full secret: shown only in this response")


class DestinationPatch(BaseModel):
    """``PATCH``: switch a destination on or off; enabling clears an automatic disable."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class TestSendOut(BaseModel):
    delivered: bool = Field(description="the receiver answered 2xx")
    status_code: int | None = Field(description="the receiver's status; null if none came")
    latency_ms: float
    error: str | None = Field(description="why no answer came (timeout, connection, refused URL)")
    response_body: str | None = Field(description="the start of the receiver's answer")
    webhook_id: str = Field(description="the webhook-id header of the test message")
