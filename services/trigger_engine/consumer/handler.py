"""The edge of the clm.events consumer: decode, open the transaction, hand the batch over."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.trigger_engine.context import EngineContext
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.partitions import repository as partitions
from services.trigger_engine.partitions import watermark
from services.trigger_engine.processing.batch import BatchOutcome, handle_events
from services.trigger_engine.processing.committed import after_commit
from services.trigger_engine.processing.retry import MAX_ATTEMPTS, retryable
from shared.db import transaction
from shared.envelope import Event, decode_event
from shared.kafka.consumer import Decoded, PoisonRecord

log = logging.getLogger(__name__)


def decode(record: ConsumerRecord) -> Event:
    if not record.value:
        raise PoisonRecord("empty", "empty record")
    return decode_event(record.value)


class EventBatchHandler:
    """``ConsumerLoop`` handler: one database transaction per poll."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def __call__(self, batch: Sequence[Decoded[Event]]) -> None:
        settings = self.ctx.settings
        events = [(item.value, (item.record.value or b"").decode()) for item in batch]
        # Committed with the batch: a timer released by these records' watermark can only
        # see the state they produced.
        marks = watermark.from_records(
            ((i.record.topic, i.record.partition, i.record.timestamp) for i in batch),
            lateness=settings.watermark_lateness,
        )
        started = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with transaction(self.ctx.sessions) as session:
                    now = datetime.now(UTC)
                    outcome = await handle_events(
                        session,
                        self.ctx.config,
                        events,
                        now=now,
                        grace=settings.late_timer_grace,
                        cache=self.ctx.states,
                    )
                    await partitions.advance(session, marks, now=now)
                break
            except Exception as exc:
                if not retryable(exc) or attempt == MAX_ATTEMPTS:
                    raise
                m.BATCH_RETRIES.inc()
                log.info("batch redone after a concurrent change", extra={"error": str(exc)})
        m.FOLD_SECONDS.observe(time.perf_counter() - started)
        self._after_commit(outcome)

    def _after_commit(self, outcome: BatchOutcome) -> None:
        self.ctx.states.keep(outcome.written.states)
        m.EVENTS.labels("folded").inc(outcome.folded)
        if outcome.duplicates:
            m.EVENTS.labels("duplicate").inc(outcome.duplicates)
        after_commit(self.ctx, outcome.written)
