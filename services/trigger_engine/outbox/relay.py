"""The outbox relay: publishes committed outbox rows to ``clm.actions`` and marks them.

Rows are locked with ``FOR UPDATE SKIP LOCKED`` while they are produced (``acks=all``) and
marked published in the same transaction, so several relays share the work without sending
a row twice in the normal case. A crash after the broker acknowledged and before the mark
commits sends the row again on restart: delivery to Kafka is at least once, and the action
id (the webhook-id) lets the messenger drop the copy.

The relay wakes when a local commit wrote outbox rows and otherwise polls at a short
interval (rows written by other instances, rows left by a crash).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.outbox import repository
from services.trigger_engine.wakeup import wait_for_work
from shared import topics
from shared.db import transaction

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        batch: int,
        poll_seconds: float,
        topic: str = topics.ACTIONS,
    ) -> None:
        self.sessions = sessions
        self.producer = producer
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.topic = topic
        self.wake = asyncio.Event()

    def notify(self) -> None:
        """Something was committed to the outbox: publish it now rather than at the next poll."""
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            published = await self.publish_once()
            if published < self.batch:
                await wait_for_work(self.wake, stop, timeout=self.poll_seconds)

    async def publish_once(self) -> int:
        """Publish up to one batch of pending rows; returns how many were published."""
        async with transaction(self.sessions) as session:
            rows = await repository.claim(session, limit=self.batch)
            if not rows:
                return 0
            futures = [
                await self.producer.send(
                    self.topic, row.payload.encode(), key=row.customer_key.encode()
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await repository.mark_published(
                session, [row.seq for row in rows], now=datetime.now(UTC)
            )
        for row in rows:
            m.OUTBOX_PUBLISHED.labels(row.kind).inc()
        return len(rows)
