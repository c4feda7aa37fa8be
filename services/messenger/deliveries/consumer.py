"""The ``clm.actions`` consumer: one transaction per batch, offsets committed after it.

Three record types: actions, run cancellations and erasure notices; anything else (an unknown
``type`` included) is dead-lettered as ``invalid_action``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.messenger.context import MessengerContext
from services.messenger.deliveries.intake import ActionsRecord, handle_records
from services.messenger.observability import metrics
from shared import topics
from shared.db import transaction
from shared.envelope import ActionV1, decode_action_topic
from shared.kafka.consumer import ConsumerLoop, Decoded, PoisonRecord, create_consumer
from shared.kafka.deadletters import DeadLetters

log = logging.getLogger(__name__)


def decode(record: ConsumerRecord) -> ActionsRecord:
    try:
        return decode_action_topic(record.value or b"")
    except ValidationError as exc:
        raise PoisonRecord("invalid_action", str(exc)[:2000]) from None


class ActionsHandler:
    def __init__(self, ctx: MessengerContext) -> None:
        self.ctx = ctx

    async def __call__(self, batch: Sequence[Decoded[ActionsRecord]]) -> None:
        records = [item.value for item in batch]
        async with transaction(self.ctx.sessions) as session:
            done = await handle_records(
                session,
                records,
                now=datetime.now(UTC),
                first_delay=self.ctx.policy.first_attempt_delay,
            )
        for record in records:
            if isinstance(record, ActionV1):
                metrics.ACTIONS.labels(record.channel).inc()
        for reason, count in done.cancelled.items():
            metrics.CANCELLED.labels(reason).inc(count)
        if done.cancelled:
            log.info(
                "deliveries cancelled: their run ended",
                extra={"deliveries": done.cancelled.total(), "reasons": dict(done.cancelled)},
            )
        if done.purged:
            log.info("erased customer data", extra={"deliveries": done.purged})
        if done.created:
            self.ctx.wake()


async def run_actions_consumer(
    ctx: MessengerContext,
    dead_letters: DeadLetters,
    stop: asyncio.Event,
    *,
    max_batches: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    settings = ctx.settings
    consumer = create_consumer(
        settings.require_kafka_bootstrap(),
        topics.ACTIONS,
        group_id=settings.consumer_group,
        client_id="clm-messenger",
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    await consumer.start()
    try:
        loop: ConsumerLoop[ActionsRecord] = ConsumerLoop(
            consumer,
            group=settings.consumer_group,
            decode=decode,
            handler=ActionsHandler(ctx),
            dead_letters=dead_letters,
        )
        return await loop.run(stop, max_batches=max_batches, idle_timeout=idle_timeout)
    finally:
        await consumer.stop()
