"""Request and response bodies of ``/v1/suppressions``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.messenger.destinations.schemas import Channel
from services.messenger.suppressions.models import Suppression
from services.messenger.suppressions.rules import Kind, Subject, normalize_address
from shared.http.pages import Page


class SuppressionIn(BaseModel):
    """Suppress a customer, or an address (email, phone), on a channel."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    customer_id: str | None = Field(default=None, min_length=1, max_length=500)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    reason: Literal["unsubscribed", "bounced", "complained", "manual"] = "manual"
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.customer_id is None) == (self.address is None):
            raise ValueError("give exactly one of customer_id and address")
        return self

    def subject(self) -> Subject:
        if self.customer_id is not None:
            return (self.channel, Kind.CUSTOMER, self.customer_id)
        assert self.address is not None
        return (self.channel, Kind.ADDRESS, normalize_address(self.channel, self.address))


class SuppressionOut(BaseModel):
    id: uuid.UUID
    channel: str
    customer_id: str | None
    address: str | None = Field(description="normalized (lower-case email, compact phone)")
    reason: str
    source: str = Field(description="api or provider")
    destination_id: str | None = Field(description="the destination whose callback added it")
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Suppression) -> SuppressionOut:
        is_customer = row.kind == Kind.CUSTOMER.value
        return cls(
            id=row.id,
            channel=row.channel,
            customer_id=row.value if is_customer else None,
            address=None if is_customer else row.value,
            reason=row.reason,
            source=row.source,
            destination_id=row.destination_id,
            note=row.note,
            created_at=row.created_at,
        )


class SuppressionPage(Page[SuppressionOut]):
    """One page, newest first."""
