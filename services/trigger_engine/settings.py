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
        default_factory=_instance_id,
        description="Names this instance (partition claims, logs).",
    )
    consumer_group: str = Field(
        default="clm-trigger-engine", description="Kafka consumer group of the clm.events reader."
    )
    events_topic: str = Field(default="clm.events", description="Topic the engine consumes.")
    handoff_topic: str = Field(
        default="clm.engine.handoff",
        description="The engine's internal topic for work on a customer another partition's "
        "owner must do (identity merges across partitions); created with the partition "
        "count of events_topic.",
    )
    checkpoint_ms: int = Field(
        default=1000,
        ge=10,
        description="How often an owner checkpoints its partitions: changed customer states, "
        "stage history, run records and event log rows, with the offsets consumed, in one "
        "transaction. The next checkpoint is collected once the last one is written (the "
        "loop does not wait for it), so under load they come less often and cover more. "
        "Reads through the ops API lag the stream by about this much plus the time a "
        "checkpoint takes to write; a crash replays about as much. (Actions are committed "
        "and published right after their batch, not at the checkpoint.)",
    )
    consumer_fetch_wait_ms: int = Field(
        default=20,
        ge=0,
        description="How long the broker may hold a fetch that found no data (the embedded "
        "broker answers only when it ends): the latency added to an event when live.",
    )
    consumer_max_records: int = Field(
        default=2000,
        ge=1,
        description="Records per poll, folded together (their actions committed after them).",
    )
    consumer_fill_ms: int = Field(
        default=20,
        ge=0,
        description="When a poll returns a tenth of consumer_max_records or more (the engine "
        "is behind), keep collecting for up to this long (or until consumer_max_records) "
        "before folding them as one batch. A poll with fewer records (live) is folded at once.",
    )
    run_consumer: bool = Field(default=True, description="Consume clm.events.")
    state_cache_size: int = Field(
        default=200_000,
        ge=1,
        description="Customer states an instance keeps in memory (shared by its partitions; "
        "a few kB each). Clean states beyond it are dropped, least recently used first, and "
        "read back from PostgreSQL when needed.",
    )
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
    lifecycle_pass_chunk: int = Field(
        default=500,
        ge=1,
        description="Customers of a partition an owner re-evaluates at a time after a "
        "lifecycle model change (one chunk per partition between two batches).",
    )
    gauges_seconds: float = Field(default=5.0, gt=0, description="Backlog gauge refresh interval.")
    erasure_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long DELETE /v1/customers/{id} waits for the customer's owner to "
        "carry the erasure out before answering status pending.",
    )
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
        "store). 0: forever. At least 30 otherwise, well past the clm.events retention (7 "
        "days): an event still in the topic stays readable in the store.",
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
                f"must be 0 (keep forever) or at least {MIN_EVENT_RETENTION_DAYS} days, past "
                "the clm.events retention: an event still in the topic stays in the store"
            )
        return days
