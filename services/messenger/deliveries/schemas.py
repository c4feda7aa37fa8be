"""Response and request bodies of ``/v1/deliveries``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.http.pages import Page

StatusName = Literal[
    "pending", "retrying", "delivered", "failed", "dead", "suppressed", "cancelled"
]


class AttemptOut(BaseModel):
    number: int = Field(description="1-based over the delivery's life")
    round: int = Field(description="1 for the original schedule, +1 per replay")
    destination_id: str | None
    started_at: datetime
    latency_ms: float
    status_code: int | None = Field(description="the receiver's status; null if none came")
    outcome: Literal["delivered", "retry", "failed", "gone", "dead"]
    error: str | None = Field(description="why no response came (timeout, connection, …)")
    response_body: str | None = Field(description="the start of the receiver's answer")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    action_id: str = Field(description="the webhook-id of every attempt")
    customer_id: str
    channel: str
    destination_id: str | None
    rule: str | None
    template: str | None
    status: StatusName = Field(
        description="cancelled: not sent because its run ended first (the customer bought, "
        "left the audience, …; last_error says why) or the customer was erased"
    )
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    provider_status: str | None = Field(
        description="latest provider callback: delivered, bounced, complained, unsubscribed"
    )
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    erased_at: datetime | None
    data: dict[str, Any] | None = Field(description="the webhook data (null once erased)")
    attempts: list[AttemptOut]


class DeliveryPage(Page[DeliveryOut]):
    """One page, newest first."""


ReplayableName = Literal["retrying", "delivered", "failed", "dead", "suppressed", "cancelled"]
"""``cancelled``: only deliveries cancelled because their run ended (not erased ones); a
replay sends them all the same."""


def _dead_only() -> list[ReplayableName]:
    return ["dead"]


class ReplayFilter(BaseModel):
    """Which deliveries to replay. Every given condition must hold."""

    model_config = ConfigDict(extra="forbid")

    status: list[ReplayableName] = Field(default_factory=_dead_only, min_length=1)
    destination_id: str | None = None
    customer_id: str | None = None
    created_from: datetime | None = Field(default=None, description="created at or after")
    created_to: datetime | None = Field(default=None, description="created before")
    limit: int = Field(default=1000, ge=1, le=10_000)


class ReplayResult(BaseModel):
    replayed: int = Field(description="deliveries queued again (each keeps its webhook-id)")
