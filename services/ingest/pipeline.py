"""The one path every accepted message takes, from HTTP or from ``storefront.events``:
drop the ``messageId``s already accepted from the same source, produce the rest to
``clm.events`` and wait for ``acks=all``, then remember their ids (and, with the event
journal on, keep the events with where the broker put them: ``clm/recovery.py``).

Crash between produce and remember: the client retries, the event is produced again with
the same ``event_id``, and the engine's unique constraint on it absorbs the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from prometheus_client import Counter, Histogram
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import topics
from shared.envelope import EventV1

log = logging.getLogger(__name__)

ACCEPTED = Counter("clm_ingest_events_total", "Events accepted to clm.events", ["origin"])
DUPLICATES = Counter("clm_ingest_duplicates_total", "Messages dropped as already seen", ["origin"])
PRODUCE_SECONDS = Histogram(
    "clm_ingest_produce_seconds",
    "Time from produce to acks=all for one request or batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_SEEN = text(
    "SELECT message_id FROM ingest.seen_messages WHERE source = :source AND message_id IN :ids"
).bindparams(bindparam("ids", expanding=True))

_REMEMBER = text(
    "INSERT INTO ingest.seen_messages (source, message_id, received_at) "
    "SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[]), "
    "CAST(:times AS timestamptz[])) ON CONFLICT DO NOTHING"
)

_JOURNAL = text(
    'INSERT INTO ingest.journal (key, body, partition, "offset", accepted_at) '
    "SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:bodies AS bytea[]), "
    "CAST(:partitions AS int[]), CAST(:offsets AS bigint[]), CAST(:times AS timestamptz[]))"
)


class Pipeline:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        produce_timeout: float,
        journal: bool = False,
    ) -> None:
        self.sessions = sessions
        self.producer = producer
        self.produce_timeout = produce_timeout
        self.journal = journal

    async def accept(self, events: Sequence[EventV1], *, origin: str) -> int:
        """Make ``events`` durable on ``clm.events`` exactly once per (source, messageId).
        Returns how many were new. Raises on a broker or database failure (nothing is
        remembered then, so a retry produces again)."""
        fresh = await self._unseen(events)
        if len(fresh) < len(events):
            DUPLICATES.labels(origin).inc(len(events) - len(fresh))
        if not fresh:
            return 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        bodies = [e.to_bytes() for e in fresh]
        async with asyncio.timeout(self.produce_timeout):
            futures = [
                await self.producer.send(topics.EVENTS, body, key=e.customer_key.encode())
                for e, body in zip(fresh, bodies, strict=True)
            ]
            placed: list[RecordMetadata] = await asyncio.gather(*futures)
        PRODUCE_SECONDS.observe(loop.time() - started)
        await self._remember(fresh, bodies if self.journal else None, placed)
        ACCEPTED.labels(origin).inc(len(fresh))
        return len(fresh)

    async def _unseen(self, events: Sequence[EventV1]) -> list[EventV1]:
        by_source: dict[str, list[EventV1]] = {}
        for e in events:
            by_source.setdefault(e.source, []).append(e)
        fresh: list[EventV1] = []
        async with self.sessions() as session:
            for source, group in by_source.items():
                ids = list({e.message_id for e in group})
                seen = set((await session.scalars(_SEEN, {"source": source, "ids": ids})).all())
                unique: set[str] = set()
                for e in group:
                    if e.message_id not in seen and e.message_id not in unique:
                        unique.add(e.message_id)
                        fresh.append(e)
        return fresh

    async def _remember(
        self,
        events: Sequence[EventV1],
        bodies: Sequence[bytes] | None,
        placed: Sequence[RecordMetadata],
    ) -> None:
        """Remember the ids (and journal ``bodies``, when given) in one transaction: the
        client hears 200 only once both are durable."""
        received: list[datetime] = [e.received_at for e in events]
        async with self.sessions() as session, session.begin():
            await session.execute(
                _REMEMBER,
                {
                    "sources": [e.source for e in events],
                    "ids": [e.message_id for e in events],
                    "times": received,
                },
            )
            if bodies is not None:
                await session.execute(
                    _JOURNAL,
                    {
                        "keys": [e.customer_key for e in events],
                        "bodies": list(bodies),
                        "partitions": [meta.partition for meta in placed],
                        "offsets": [meta.offset for meta in placed],
                        "times": received,
                    },
                )


async def prune_seen(sessions: async_sessionmaker[AsyncSession], *, hours: int) -> int:
    """Forget messageIds older than the dedupe window, a bounded chunk at a time."""
    total = 0
    while True:
        async with sessions() as session, session.begin():
            result = await session.execute(
                text(
                    "DELETE FROM ingest.seen_messages WHERE ctid IN ("
                    " SELECT ctid FROM ingest.seen_messages"
                    " WHERE received_at < now() - make_interval(hours => :hours) LIMIT 10000)"
                ),
                {"hours": hours},
            )
        deleted = result.rowcount or 0  # type: ignore[attr-defined]
        total += deleted
        if deleted < 10_000:
            return total
