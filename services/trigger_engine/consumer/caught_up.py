"""Moving the watermark of partitions that receive nothing: the caught-up check.

Between two batches (every record returned so far is folded and committed), at most every
``CLM_WATERMARK_CHECK_MS``, the consumer reads its partitions' end offsets. A partition whose
position has reached both that end offset and the high watermark of its last fetch response
has folded everything appended before the check began, so its watermark moves to that
instant less the allowed lateness (see ``partitions/watermark.py``). Records move it too, in
the batch's own transaction (``consumer/handler.py``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from services.trigger_engine.context import EngineContext
from services.trigger_engine.partitions import repository as partitions
from services.trigger_engine.partitions.watermark import caught_up
from shared.db import transaction
from shared.kafka.consumer import is_transient

log = logging.getLogger(__name__)


class CaughtUpCheck:
    """The consumer loop's ``between_batches`` hook for one topic."""

    def __init__(self, ctx: EngineContext, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.ctx = ctx
        self.consumer = consumer
        self.topic = topic
        self._next_check = 0.0
        self._known_partitions = 0

    async def __call__(self) -> None:
        settings = self.ctx.settings
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + settings.watermark_check_ms / 1000
        try:
            await self._check()
        except (KafkaError, IllegalStateError) as exc:
            # A rebalance took a partition away meanwhile: the next check sees the new set.
            log.debug("caught-up check skipped", extra={"error": repr(exc)})
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("caught-up check failed; trying again", extra={"error": repr(exc)})

    async def _check(self) -> None:
        settings = self.ctx.settings
        assigned = sorted(
            (tp for tp in self.consumer.assignment() if tp.topic == self.topic),
            key=lambda tp: tp.partition,
        )
        if not assigned:
            return
        checked_at = datetime.now(UTC)  # before the end offsets are read
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(assigned)
        mark = checked_at - settings.watermark_lateness
        marks = {}
        for tp in assigned:
            position = await self.consumer.position(tp)
            if caught_up(position, ends[tp], self.consumer.highwater(tp)):
                marks[(tp.topic, tp.partition)] = mark
        count = len(self.consumer.partitions_for_topic(self.topic) or ())
        if not marks and count <= self._known_partitions:
            return
        async with transaction(self.ctx.sessions) as session:
            if count > self._known_partitions:
                await partitions.ensure(session, self.topic, count)
            await partitions.advance(session, marks, now=checked_at)
        self._known_partitions = max(self._known_partitions, count)
