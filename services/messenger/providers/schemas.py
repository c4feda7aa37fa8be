"""Bodies of ``POST /v1/provider-events``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.messenger.destinations.schemas import Channel
from services.messenger.suppressions.rules import ProviderEventType


class ProviderEvent(BaseModel):
    """What happened to a message. Name the message by ``action_id`` (the ``webhook-id`` we
    sent), or, for an event not tied to one message (a list unsubscribe), name ``customer_id``
    and/or ``address`` (``channel`` defaults to the destination's)."""

    model_config = ConfigDict(extra="ignore")

    type: ProviderEventType
    action_id: str | None = Field(default=None, max_length=200)
    channel: Channel | None = None
    customer_id: str | None = Field(default=None, max_length=500)
    address: str | None = Field(default=None, max_length=500)
    occurred_at: datetime | None = None
    detail: str | None = Field(default=None, max_length=1000)


class ProviderEvents(BaseModel):
    events: list[ProviderEvent] = Field(min_length=1, max_length=500)


class RejectedEvent(BaseModel):
    index: int
    code: str
    message: str


class ProviderEventsResult(BaseModel):
    accepted: int
    rejected: list[RejectedEvent] = Field(default_factory=list)
