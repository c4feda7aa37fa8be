"""The ``storefront.events`` consumer: sites that produce Segment messages straight to Kafka.

Records go through the same validation, dedupe and dead-lettering as the HTTP API. A record
is one Segment message or a ``{"batch": [...]}``. Its source is the record header
``source`` (Kafka access control stands in for write keys here), else ``storefront``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.ingest.context import IngestContext
from services.ingest.tracking.validate import parse_record_value
from shared import topics
from shared.envelope import DeadLetterV1, EventV1
from shared.kafka.consumer import ConsumerLoop, Decoded, create_consumer

GROUP = "clm-ingest-storefront"
DEFAULT_SOURCE = "storefront"


def record_source(record: ConsumerRecord) -> str:
    for name, value in record.headers or ():
        if name == "source" and value:
            return bytes(value).decode("utf-8", errors="replace")
    return DEFAULT_SOURCE


class StorefrontHandler:
    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx

    async def __call__(self, batch: Sequence[Decoded[ConsumerRecord]]) -> None:
        received_at = datetime.now(UTC)
        events: list[EventV1] = []
        letters: list[tuple[bytes | None, DeadLetterV1]] = []
        for item in batch:
            record = item.record
            source = record_source(record)
            accepted, rejected = parse_record_value(
                record.value or b"", default_source=source, received_at=received_at
            )
            events.extend(e for _, e in accepted)
            letters.extend(
                self.ctx.dead_letters.build(
                    origin=record.topic,
                    source=source,
                    partition=record.partition,
                    offset=record.offset,
                    index=index,
                    code=rejection.code,
                    reason=rejection.message,
                    errors=rejection.errors,
                    payload=record.value,
                    key=record.key,
                )
                for index, rejection in rejected
            )
        if letters:
            await self.ctx.dead_letters.send_many(letters)
        if events:
            await self.ctx.pipeline.accept(events, origin="kafka")


def _identity(record: ConsumerRecord) -> ConsumerRecord:
    return record


async def run_storefront_consumer(
    ctx: IngestContext,
    stop: asyncio.Event,
    *,
    group_id: str = GROUP,
    max_batches: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    consumer = create_consumer(
        ctx.settings.require_kafka_bootstrap(),
        topics.STOREFRONT_EVENTS,
        group_id=group_id,
        client_id="clm-ingest",
        session_timeout_ms=ctx.settings.kafka_session_timeout_ms,
    )
    await consumer.start()
    try:
        loop: ConsumerLoop[ConsumerRecord] = ConsumerLoop(
            consumer,
            group=group_id,
            decode=_identity,
            handler=StorefrontHandler(ctx),
            dead_letters=ctx.dead_letters,
        )
        return await loop.run(stop, max_batches=max_batches, idle_timeout=idle_timeout)
    finally:
        await consumer.stop()
