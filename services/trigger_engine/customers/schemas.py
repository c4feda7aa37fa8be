"""Response shapes of the customers API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TransitionOut(BaseModel):
    from_stage: str | None = Field(serialization_alias="from")
    to_stage: str = Field(serialization_alias="to")
    at: datetime
    cause: str = Field(
        description="event: an event; time: time passing; merge: an anonymous customer merged "
        "in; model: a new lifecycle model (cause_message_id lifecycle:v<version>)",
        json_schema_extra={"enum": ["event", "time", "merge", "model"]},
    )
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
    release_at: datetime = Field(
        description="the timer fires once every clm.events partition has been consumed past "
        "this instant: its due time, or, when it was already due as its trigger arrived, "
        "CLM_LATE_TIMER_GRACE_SECONDS after that arrival"
    )
    rule: str | None
    run_id: str | None


class CustomerSummary(BaseModel):
    """A customer in a list: the columns kept beside the state, no traits."""

    id: str = Field(description="the user id, else the anonymous id the customer is keyed by")
    customer_key: str
    user_id: str | None
    stage: str | None
    stage_entered_at: datetime | None
    orders: int
    revenue: float
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    last_order_at: datetime | None


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
    context_timezone: str | None = Field(
        default=None,
        description="the last valid IANA zone the customer's device sent as context.timezone; "
        "quiet hours use it when traits.timezone is absent or invalid",
    )


TimelineType = Literal["event", "stage", "run", "action", "erasure"]


class TimelineItem(BaseModel):
    """One thing that happened to the customer; ``data`` depends on ``type``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-03-02T09:00:00Z",
                    "type": "run",
                    "data": {
                        "run_id": "0f5c9f0e-3f39-5d0e-9a43-1c3a4b0f6a11",
                        "rule": "cart-abandon",
                        "rule_version": 3,
                        "kind": "skipped",
                        "step": 1,
                        "holdout": False,
                        "detail": "opted_out",
                        "reason": "opted_out",
                    },
                }
            ]
        }
    )

    at: datetime
    type: TimelineType = Field(
        description="event: a stored event; stage: a stage transition; run: a run record; "
        "action: an action written to the outbox; erasure: the erasure notice"
    )
    data: dict[str, Any] = Field(
        description="event: event_id, call, event, message_id, properties (traits); "
        "stage: from, to, at, cause, cause_event, cause_message_id, reactivated; "
        "run: run_id, rule, rule_version, kind (started, held_out, skipped, deferred, exited, "
        "completed, converted; sent only once outbox retention deleted the send's action "
        "item), step (null for started, completed, converted), holdout, "
        "detail, and detail under its name: trigger_message_id (started), action_id "
        "(held_out, sent), reason (skipped: opted_out, no_opt_in, frequency_capped; exited: "
        "exit_when, audience, rule_disabled, rule_version_missing, merged), until (deferred: "
        "ISO 8601 time the send is retried), message_id (converted); "
        "action: id, published_at and the webhook data object (action_id, rule, "
        "rule_version, step, channel, template, customer, context)"
    )


class TimelineOut(BaseModel):
    customer_key: str
    items: list[TimelineItem]


class ErasureOut(BaseModel):
    erasure_id: str
    customer_key: str
    status: Literal["done", "pending"] = Field(
        description="done: everything held for the customer is deleted and the messenger is "
        "told; pending: the customer's owner has not carried it out yet (it will: the "
        "request is stored), e.g. while the engine restarts"
    )
    erased: dict[str, int] = Field(description="rows deleted per table (empty while pending)")
