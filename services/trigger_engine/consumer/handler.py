"""The edge of the clm.events consumer: decode, open the transaction, hand the batch over."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.trigger_engine.context import EngineContext
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.processing.batch import BatchOutcome, handle_events
from services.trigger_engine.processing.committed import after_commit
from services.trigger_engine.processing.retry import MAX_ATTEMPTS, retryable
from shared.db import transaction
from shared.envelope import EventV1, decode_event
from shared.kafka.consumer import Decoded, PoisonRecord

log = logging.getLogger(__name__)


def decode(record: ConsumerRecord) -> EventV1:
    if not record.value:
        raise PoisonRecord("empty", "empty record")
    return decode_event(record.value)


class EventBatchHandler:
    """``ConsumerLoop`` handler: one database transaction per poll."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def __call__(self, batch: Sequence[Decoded[EventV1]]) -> None:
        events = [(item.value, (item.record.value or b"").decode()) for item in batch]
        started = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with transaction(self.ctx.sessions) as session:
                    outcome = await handle_events(
                        session,
                        self.ctx.config,
                        events,
                        now=datetime.now(UTC),
                        cache=self.ctx.states,
                    )
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
