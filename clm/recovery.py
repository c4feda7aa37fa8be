"""What the embedded broker loses, published again from PostgreSQL.

The embedded broker (Tansu) keeps everything in memory: when it stops, every topic is gone.
``clm run`` makes that lose nothing that was acknowledged. PostgreSQL holds what is needed:

- ``ingest.journal``: every event answered 200, with the partition and offset the broker gave
  it (``CLM_EVENT_JOURNAL``, on with the embedded broker);
- ``engine.handoff_journal``: the engine's hand-off records, likewise;
- ``engine.outbox``: every action, cancellation and erasure notice the engine emitted;
- ``engine.partitions``: the offsets the engine has checkpointed; ``messenger.deliveries``
  and ``messenger.cancelled_runs``: the actions and cancellations the messenger has taken in.

So what the broker held and nobody had consumed yet is known exactly, and:

- :func:`prune` deletes the journal rows the engine has checkpointed past (``clm run`` calls
  it every minute);
- :func:`backlog` counts what is not consumed yet (an orderly stop waits for it to be empty);
- :func:`recover` runs whenever the broker starts empty (at every start of ``clm run``, and
  after the broker died), while no service runs: in one transaction it forgets what was
  consumed, marks the rest to be published again, sets the engine's offsets back to the
  beginning of the new, empty topics (and moves its partitions' generations on, fencing any
  engine that still runs) and marks for publishing the actions and cancellations the
  messenger has not taken in, and the erasure notices of the last day; then it creates the
  topics and publishes the journals in their original order. Every consumer is idempotent
  (events by id, actions by id), so publishing again what had in fact been consumed is
  harmless, and a crash half-way simply publishes again.

This module knows the three services' tables: it is the embedded runtime's glue, used by
``clm run`` only. With a replicated Kafka none of it is needed (the journal stays off).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.kafka.admin import TopicConfig, ensure_topics

log = logging.getLogger("clm.recovery")

#: Rows published at a time.
_CHUNK = 5000

#: Erasure notices published within this long are published again (the messenger keeps no
#: record of them; applying one again is harmless: it purges again).
_NOTICES_WINDOW = "24 hours"

_CONSUMED_EVENTS = (
    "DELETE FROM ingest.journal AS j USING engine.partitions AS p "
    'WHERE p.topic = $1 AND j.partition = p.partition AND j."offset" < p.events_offset'
)
_CONSUMED_HANDOFFS = (
    "DELETE FROM engine.handoff_journal AS h USING engine.partitions AS p "
    'WHERE p.topic = $1 AND h.partition = p.partition AND h."offset" < p.handoff_offset'
)
#: Outbox rows the messenger has not taken in: actions without a delivery, cancellations
#: without their cancelled run.
_NOT_TAKEN_IN = (
    "(o.kind = 'action' AND NOT EXISTS "
    "(SELECT 1 FROM messenger.deliveries AS d WHERE d.action_id = o.id)) OR "
    "(o.kind = 'cancel' AND NOT EXISTS "
    "(SELECT 1 FROM messenger.cancelled_runs AS c WHERE c.run_id = o.payload ->> 'run_id'))"
)


@dataclass(frozen=True)
class Backlog:
    """What the broker holds that its consumers have not taken in yet."""

    events: int
    handoffs: int
    actions: int

    @property
    def empty(self) -> bool:
        return not (self.events or self.handoffs or self.actions)


async def prune(connection: asyncpg.Connection, *, events_topic: str = topics.EVENTS) -> int:
    """Delete the journalled events the engine has checkpointed past; returns how many."""
    status = await connection.execute(_CONSUMED_EVENTS, events_topic)
    return int(status.split()[-1])


async def backlog(connection: asyncpg.Connection, *, events_topic: str = topics.EVENTS) -> Backlog:
    """Count the journalled events and hand-offs the engine has not checkpointed past, and
    the actions the messenger has not taken in."""
    row = await connection.fetchrow(
        "SELECT "
        "(SELECT count(*) FROM ingest.journal AS j LEFT JOIN engine.partitions AS p "
        ' ON p.topic = $1 AND p.partition = j.partition WHERE j."offset" IS NULL '
        ' OR p.events_offset IS NULL OR j."offset" >= p.events_offset), '
        "(SELECT count(*) FROM engine.handoff_journal AS h LEFT JOIN engine.partitions AS p "
        ' ON p.topic = $1 AND p.partition = h.partition WHERE h."offset" IS NULL '
        ' OR p.handoff_offset IS NULL OR h."offset" >= p.handoff_offset), '
        f"(SELECT count(*) FROM engine.outbox AS o WHERE {_NOT_TAKEN_IN})",
        events_topic,
    )
    assert row is not None
    return Backlog(events=row[0], handoffs=row[1], actions=row[2])


async def forget_broker(
    connection: asyncpg.Connection, *, events_topic: str = topics.EVENTS
) -> Backlog:
    """The broker starts empty: in one transaction, forget what was consumed, mark the rest
    of both journals and the actions not taken in to be published again, and point the
    engine at the beginning of the new topics. Returns what is to be published."""
    async with connection.transaction():
        await connection.execute(_CONSUMED_EVENTS, events_topic)
        await connection.execute(_CONSUMED_HANDOFFS, events_topic)
        await connection.execute(
            'UPDATE ingest.journal SET partition = NULL, "offset" = NULL WHERE "offset" IS NOT NULL'
        )
        await connection.execute(
            'UPDATE engine.handoff_journal SET partition = NULL, "offset" = NULL '
            'WHERE "offset" IS NOT NULL'
        )
        await connection.execute(
            "UPDATE engine.partitions SET events_offset = NULL, handoff_offset = NULL, "
            "generation = generation + 1 WHERE topic = $1",
            events_topic,
        )
        # The engine publishes its unpublished outbox rows when it is assigned their
        # partitions (at its start).
        await connection.execute(
            "UPDATE engine.outbox AS o SET published_at = NULL "
            f"WHERE o.published_at IS NOT NULL AND ({_NOT_TAKEN_IN} OR (o.kind = 'erasure' "
            f"AND o.published_at > now() - interval '{_NOTICES_WINDOW}'))"
        )
        return await backlog(connection, events_topic=events_topic)


async def _publish_journal(
    connection: asyncpg.Connection, producer: AIOKafkaProducer, table: str, topic: str
) -> int:
    """Publish the rows of ``table`` waiting to be published again, in their original order,
    and record where the broker put each."""
    total = 0
    while True:
        rows = await connection.fetch(
            f'SELECT seq, key, body FROM {table} WHERE "offset" IS NULL ORDER BY seq LIMIT $1',
            _CHUNK,
        )
        if not rows:
            return total
        futures = [
            await producer.send(topic, bytes(row["body"]), key=row["key"].encode()) for row in rows
        ]
        placed = await asyncio.gather(*futures)
        await connection.execute(
            f'UPDATE {table} AS t SET partition = u.partition, "offset" = u."offset" '
            'FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS u(seq, partition, "offset") '
            "WHERE t.seq = u.seq",
            [row["seq"] for row in rows],
            [meta.partition for meta in placed],
            [meta.offset for meta in placed],
        )
        total += len(rows)


async def recover(
    database_url: str,
    bootstrap: str,
    topic_config: TopicConfig,
    *,
    handoff_topic: str,
    events_topic: str = topics.EVENTS,
) -> None:
    """See the module: run while no service runs, on a broker that has just started empty.
    The log says how much was published again (the actions: by the engine, at its start)."""
    await ensure_topics(bootstrap, topic_config, names=(*topics.ALL, handoff_topic))
    connection = await asyncpg.connect(database_url)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        waiting = await forget_broker(connection, events_topic=events_topic)
        await producer.start()
        events = await _publish_journal(connection, producer, "ingest.journal", events_topic)
        handoffs = await _publish_journal(
            connection, producer, "engine.handoff_journal", handoff_topic
        )
    finally:
        await producer.stop()
        await connection.close()
    if events or handoffs or waiting.actions:
        log.warning(
            "published again what the broker had lost",
            extra={"events": events, "handoffs": handoffs, "actions": waiting.actions},
        )
