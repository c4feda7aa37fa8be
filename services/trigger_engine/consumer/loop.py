"""Running the clm.events consumer (the ``ConsumerLoop`` of ``shared``) for the engine."""

from __future__ import annotations

import asyncio

from services.trigger_engine.consumer.caught_up import CaughtUpCheck
from services.trigger_engine.consumer.handler import EventBatchHandler, decode
from services.trigger_engine.context import EngineContext
from shared.envelope import Event
from shared.kafka.consumer import ConsumerLoop, create_consumer


async def run_event_consumer(
    ctx: EngineContext,
    stop: asyncio.Event,
    *,
    topic: str | None = None,
    group_id: str | None = None,
    max_batches: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    """Consume until stopped (or a bound is reached); returns the records handled."""
    settings = ctx.settings
    group = group_id or settings.consumer_group
    topic_name = topic or settings.events_topic
    consumer = create_consumer(
        settings.require_kafka_bootstrap(),
        topic_name,
        group_id=group,
        client_id=f"clm-trigger-engine-{settings.instance_id}",
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    await consumer.start()
    try:
        loop: ConsumerLoop[Event] = ConsumerLoop(
            consumer,
            group=group,
            decode=decode,
            handler=EventBatchHandler(ctx),
            dead_letters=ctx.dead_letters,
            max_records=settings.consumer_max_records,
            fill_ms=settings.consumer_fill_ms,
            # An idle poll returns within this, so the caught-up check keeps its interval.
            poll_timeout_ms=min(500, settings.watermark_check_ms),
            between_batches=CaughtUpCheck(ctx, consumer, topic_name),
        )
        return await loop.run(stop, max_batches=max_batches, idle_timeout=idle_timeout)
    finally:
        await consumer.stop()
