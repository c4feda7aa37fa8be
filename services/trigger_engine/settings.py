from __future__ import annotations

import socket
import uuid
from datetime import timedelta
from typing import Final

from pydantic import Field, field_validator

from shared.settings import ServiceSettings


def _instance_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


#: Well above the clm.events topic retention (7 days), see ``event_retention_days``.
MIN_EVENT_RETENTION_DAYS: Final = 30


class EngineSettings(ServiceSettings):
    engine_port: int = Field(default=8001, description="HTTP port of the ops API.")
    instance_id: str = Field(
        default_factory=_instance_id, description="Names this instance's timer claims."
    )
    consumer_group: str = Field(
        default="clm-trigger-engine", description="Kafka consumer group of the clm.events reader."
    )
    events_topic: str = Field(default="clm.events", description="Topic the engine consumes.")
    consumer_max_records: int = Field(
        default=2000, ge=1, description="Records per poll, folded in one transaction."
    )
    consumer_fill_ms: int = Field(
        default=20,
        ge=0,
        description="After a poll returns records, keep collecting for up to this long (or "
        "until consumer_max_records) before folding them as one batch: larger batches while "
        "catching up, at most this much added latency when live.",
    )
    run_consumer: bool = Field(default=True, description="Consume clm.events.")
    run_timers: bool = Field(default=True, description="Fire due durable timers.")
    run_relay: bool = Field(default=True, description="Publish the outbox to clm.actions.")
    state_cache_size: int = Field(
        default=50_000,
        ge=0,
        description="Customer states kept decoded in memory between batches, about 8 kB "
        "each (0: none).",
    )
    timer_poll_seconds: float = Field(default=0.5, gt=0, description="Timer check interval.")
    timer_lease_seconds: float = Field(
        default=30.0, gt=0, description="How long a claimed timer is reserved for its worker."
    )
    timer_batch: int = Field(default=500, ge=1, description="Timers claimed per round.")
    watermark_lateness_ms: int = Field(
        default=1000,
        ge=0,
        description="How far a partition's watermark stays behind the newest record time "
        "folded (and behind the instant of a caught-up check): the largest clock difference "
        "expected between the hosts producing to clm.events and this engine. Every timer "
        "fires at least this long after it is due.",
    )
    watermark_check_ms: int = Field(
        default=200,
        ge=10,
        description="How often the consumer checks whether it has caught up with the end of "
        "its partitions (what moves the watermark of a partition that receives nothing).",
    )
    late_timer_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A timer that was already due when its trigger arrived (events queued "
        "offline, a backfill) waits this long after the arrival for the rest of the late "
        "burst, so that a purchase made before the due time still cancels it.",
    )
    run_lifecycle_passes: bool = Field(
        default=True,
        description="After a lifecycle model change, re-evaluate every existing customer's "
        "stage and stage timer under it (one instance at a time, in chunks).",
    )
    lifecycle_pass_chunk: int = Field(
        default=500,
        ge=1,
        description="Customers re-evaluated (and locked) per transaction of a lifecycle pass.",
    )
    lifecycle_pass_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often to look for a model stored through another instance (a PUT "
        "to this one starts its pass at once).",
    )
    lifecycle_pass_pause_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Pause between two chunks of a lifecycle pass, to slow it down (0: none).",
    )
    outbox_poll_seconds: float = Field(
        default=0.5, gt=0, description="Outbox check interval (commits also wake the relay)."
    )
    outbox_batch: int = Field(default=1000, ge=1, description="Outbox rows published per round.")
    gauges_seconds: float = Field(default=5.0, gt=0, description="Backlog gauge refresh interval.")
    simulate_max_events: int = Field(
        default=200_000, ge=1, description="Most stored events one simulation reads."
    )
    run_retention: bool = Field(
        default=True,
        description="Delete published outbox rows and stored events past their retention "
        "(see outbox_retention_days, event_retention_days).",
    )
    outbox_retention_days: int = Field(
        default=7,
        ge=0,
        description="Days a published outbox row is kept after it was published (it shows on "
        "the customer timeline until then); unpublished rows are never deleted. 0: forever.",
    )
    event_retention_days: int = Field(
        default=400,
        ge=0,
        description="Days a stored event is kept: deleted once both its timestamp and its "
        "received_at are older (timelines, simulations and lifecycle metrics read the event "
        "store). 0: forever. At least 30 otherwise: the event store is how the engine knows "
        "a redelivered or re-read clm.events record (7 days of topic retention) from a new one.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="Time between two retention rounds."
    )
    retention_batch: int = Field(
        default=5000,
        ge=1,
        description="Rows one retention statement deletes (one short transaction each).",
    )

    @property
    def watermark_lateness(self) -> timedelta:
        return timedelta(milliseconds=self.watermark_lateness_ms)

    @property
    def late_timer_grace(self) -> timedelta:
        return timedelta(seconds=self.late_timer_grace_seconds)

    @field_validator("event_retention_days")
    @classmethod
    def _keeps_events_past_topic_retention(cls, days: int) -> int:
        if 0 < days < MIN_EVENT_RETENTION_DAYS:
            raise ValueError(
                f"must be 0 (keep forever) or at least {MIN_EVENT_RETENTION_DAYS} days: events "
                "deleted while clm.events still holds them would be folded again if re-read"
            )
        return days
