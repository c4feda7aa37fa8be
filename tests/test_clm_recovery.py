"""What ``clm.recovery`` publishes again when the embedded broker starts empty, decided in
PostgreSQL: exactly what no consumer had taken in, nothing consumed, in the original order.
(``test_clm_run.py`` checks the whole of it end to end through ``clm run``.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from clm import recovery
from shared.migrations import upgrade
from tests.support.databases import own_database
from tests.support.services import Infra

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC)


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    async with own_database(infra.database_url, prefix="recovery") as url:
        await upgrade("services.ingest", "ingest", url)
        await upgrade("services.messenger", "messenger", url)
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            yield connection
        finally:
            await connection.close()


async def _journal(db: asyncpg.Connection, key: str, partition: int | None, offset: int) -> None:
    await db.execute(
        'INSERT INTO ingest.journal (key, body, partition, "offset", accepted_at) '
        "VALUES ($1, $2, $3, $4, $5)",
        key,
        key.encode(),
        partition,
        offset,
        NOW,
    )


async def _outbox(db: asyncpg.Connection, id: str, kind: str, published: timedelta) -> None:
    await db.execute(
        "INSERT INTO engine.outbox (id, customer_key, kind, payload, created_at, published_at) "
        "VALUES ($1, 'c', $2, $3::jsonb, $4, $4)",
        id,
        kind,
        f'{{"run_id": "run-{id}"}}',
        NOW - published,
    )


async def test_only_what_nobody_consumed_is_marked_to_publish_again(
    db: asyncpg.Connection,
) -> None:
    await db.execute(
        "INSERT INTO engine.partitions (topic, partition, generation, events_offset, "
        "handoff_offset) VALUES ('clm.events', 0, 4, 5, 2)"
    )
    for key, partition, offset in (("consumed", 0, 4), ("e5", 0, 5), ("e6", 0, 6), ("p1", 1, 0)):
        await _journal(db, key, partition, offset)
    for key, offset in (("h-consumed", 1), ("h2", 2)):
        await db.execute(
            'INSERT INTO engine.handoff_journal (key, body, partition, "offset") '
            "VALUES ($1, $2, 0, $3)",
            key,
            key.encode(),
            offset,
        )
    for id, kind, ago in (
        ("a-taken", "action", timedelta(hours=1)),
        ("a-lost", "action", timedelta(days=3)),
        ("c-taken", "cancel", timedelta(hours=1)),
        ("c-lost", "cancel", timedelta(days=3)),
        ("e-old", "erasure", timedelta(days=2)),
        ("e-new", "erasure", timedelta(hours=1)),
    ):
        await _outbox(db, id, kind, ago)
    await db.execute(
        "INSERT INTO messenger.deliveries (id, action_id, customer_key, channel, "
        "destination_named, action_created_at, status, attempt_count, round, round_attempts, "
        "created_at, updated_at) VALUES ($1, 'a-taken', 'c', 'email', false, $2, 'delivered', "
        "1, 1, 1, $2, $2)",
        uuid.uuid4(),
        NOW,
    )
    await db.execute(
        "INSERT INTO messenger.cancelled_runs (run_id, cancel_id, customer_key, rule, reason, "
        "ended_at, received_at) VALUES ('run-c-taken', 'c-taken', 'c', 'r', 'exit_when', $1, $1)",
        NOW,
    )
    assert await recovery.backlog(db) == recovery.Backlog(events=3, handoffs=1, actions=2)

    waiting = await recovery.forget_broker(db)

    assert waiting == recovery.Backlog(events=3, handoffs=1, actions=2)
    rows = await db.fetch('SELECT key, partition, "offset" FROM ingest.journal ORDER BY seq')
    assert [tuple(r) for r in rows] == [("e5", None, None), ("e6", None, None), ("p1", None, None)]
    handoffs = await db.fetch('SELECT key, "offset" FROM engine.handoff_journal')
    assert [tuple(r) for r in handoffs] == [("h2", None)]
    unpublished = await db.fetch(
        "SELECT id FROM engine.outbox WHERE published_at IS NULL ORDER BY id"
    )
    assert [r["id"] for r in unpublished] == ["a-lost", "c-lost", "e-new"]
    mark = await db.fetchrow(
        "SELECT generation, events_offset, handoff_offset FROM engine.partitions"
    )
    assert tuple(mark) == (5, None, None)  # the new topics from their start; old owners fenced
    # Once the engine has consumed what was published again, the journal empties.
    await db.execute('UPDATE ingest.journal SET partition = 0, "offset" = seq')
    await db.execute("UPDATE engine.partitions SET events_offset = 1000")
    assert await recovery.prune(db) == 3
