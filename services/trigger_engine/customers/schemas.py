"""Response shapes of the customers API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class TransitionOut(BaseModel):
    from_stage: str | None = Field(serialization_alias="from")
    to_stage: str = Field(serialization_alias="to")
    at: datetime
    cause: str
    cause_event: str | None
    cause_message_id: str | None
    reactivated: bool


class NpsOut(BaseModel):
    responses: int
    last_score: int | None
    score: float | None = Field(description="% promoters (9-10) minus % detractors (0-6)")


class MetricsOut(BaseModel):
    orders: int
    revenue: float
    aov: float
    first_order_at: datetime | None
    last_order_at: datetime | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    cart_adds: int
    checkouts: int
    nps: NpsOut


class CartOut(BaseModel):
    products: list[dict[str, Any]]
    value: float
    updated_at: datetime | None


class RunOut(BaseModel):
    run_id: str
    rule: str
    rule_version: int
    status: str
    step: int
    holdout: bool
    started_at: datetime
    ended_at: datetime | None
    converted: bool
    trigger: dict[str, Any]


class TimerOut(BaseModel):
    timer_id: str
    kind: str
    due_at: datetime
    rule: str | None
    run_id: str | None


class CustomerOut(BaseModel):
    id: str = Field(description="the user id, else the anonymous id the customer is keyed by")
    customer_key: str
    user_id: str | None
    anonymous_ids: list[str]
    traits: dict[str, Any]
    stage: str | None
    stage_entered_at: datetime | None
    stage_history: list[TransitionOut]
    metrics: MetricsOut
    cart: CartOut
    runs: list[RunOut]
    timers: list[TimerOut]
    recent_sends: dict[str, list[datetime]] = Field(
        default_factory=dict,
        description="channel -> recent send times the send policy's frequency caps count",
    )


class TimelineItem(BaseModel):
    at: datetime
    type: Literal["event", "stage", "action", "erasure"]
    data: dict[str, Any]


class TimelineOut(BaseModel):
    customer_key: str
    items: list[TimelineItem]


class ErasureOut(BaseModel):
    erasure_id: str
    customer_key: str
    erased: dict[str, int] = Field(description="rows deleted per table")
