"""The ``storefront.events`` consumer: sites that produce Segment messages straight to Kafka.

Records go through the same validation, dedupe and dead-lettering as the HTTP API. A record
is one Segment message or a ``{"batch": [...]}``; it is validated once, when the consumer
loop decodes it, and its rejections are dead-lettered once however often its batch is
retried. Its source is the record header ``source`` (Kafka access control stands in for
write keys here), else ``storefront``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.ingest.context import IngestContext
from services.ingest.tracking.validate import NewMessageId, RecordResult, parse_record_value
from shared import topics
from shared.ids import derive_text
from shared.kafka.consumer import ConsumerLoop, Decoded, create_consumer

GROUP = "clm-ingest-storefront"
DEFAULT_SOURCE = "storefront"


def record_source(record: ConsumerRecord) -> str:
    for name, value in record.headers or ():
        if name == "source" and value:
            return bytes(value).decode("utf-8", errors="replace")
    return DEFAULT_SOURCE


def record_message_ids(record: ConsumerRecord) -> NewMessageId:
    """Ids for the messages of ``record`` that have no ``messageId``: derived from the record's
    place in the topic and its timestamp, so a record delivered again (a consumer crashed
    before committing) keeps its ids and is deduplicated, while two identical records are two
    events. The timestamp keeps a topic recreated after a broker loss, whose offsets start
    again from 0, from reusing the ids of the old records."""
    coordinates = (record.topic, record.partition, record.offset, record.timestamp)

    def new_id(index: int | None) -> str:
        return derive_text("storefront-record", *coordinates, "" if index is None else index)

    return new_id


@dataclass
class StorefrontRecord:
    """One ``storefront.events`` record, validated once (when the consumer decodes it)."""

    source: str
    result: RecordResult
    #: Its rejections are on ``clm.dead-letters``: a retried batch does not send them again.
    reported: bool = False


def decode(record: ConsumerRecord) -> StorefrontRecord:
    source = record_source(record)
    result = parse_record_value(
        record.value or b"",
        default_source=source,
        received_at=datetime.now(UTC),
        new_id=record_message_ids(record),
    )
    return StorefrontRecord(source, result)


class StorefrontHandler:
    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx

    async def __call__(self, batch: Sequence[Decoded[StorefrontRecord]]) -> None:
        unreported = [item for item in batch if not item.value.reported]
        letters = [
            self.ctx.dead_letters.build(
                origin=item.record.topic,
                source=item.value.source,
                partition=item.record.partition,
                offset=item.record.offset,
                index=index,
                code=rejection.code,
                reason=rejection.message,
                errors=rejection.errors,
                payload=item.record.value,
                key=item.record.key,
            )
            for item in unreported
            for index, rejection in item.value.result.rejected
        ]
        if letters:
            await self.ctx.dead_letters.send_many(letters)
        for item in unreported:
            item.value.reported = True
        events = [event for item in batch for _, event in item.value.result.accepted]
        if events:
            await self.ctx.pipeline.accept(events, origin="kafka")


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
        loop: ConsumerLoop[StorefrontRecord] = ConsumerLoop(
            consumer,
            group=group_id,
            decode=decode,
            handler=StorefrontHandler(ctx),
            dead_letters=ctx.dead_letters,
        )
        return await loop.run(stop, max_batches=max_batches, idle_timeout=idle_timeout)
    finally:
        await consumer.stop()
