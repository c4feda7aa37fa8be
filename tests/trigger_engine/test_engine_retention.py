"""The retention job against real PostgreSQL, one round at a time.

The tests use a database of their own (the engine's migrations applied), so the engine that
other tests run cannot publish, delete or add rows under them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trigger_engine.retention import (
    RetentionPolicy,
    oldest_ages,
    retention_round,
    run_retention,
)
from services.trigger_engine.settings import EngineSettings
from shared.db import create_engine, session_factory
from tests.support.databases import own_database
from tests.support.services import Infra

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime.now(UTC)
LOCK = "SELECT pg_advisory_xact_lock(hashtext('engine.retention'))"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture(scope="module")
async def retention_db(infra: Infra) -> AsyncIterator[str]:
    """A database of its own with the engine's tables."""
    async with own_database(infra.database_url, prefix="clm_retention") as url:
        yield url


@pytest.fixture
async def sessions(retention_db: str) -> AsyncIterator[Sessions]:
    engine = create_engine(retention_db, pool_size=2)
    factory = session_factory(engine)
    async with factory() as session, session.begin():
        await session.execute(text("TRUNCATE engine.outbox, engine.events, engine.event_log"))
    yield factory
    await engine.dispose()


async def add_outbox(sessions: Sessions, *, created: datetime, published: datetime | None) -> str:
    row_id = f"act_{uuid.uuid4().hex}"
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO engine.outbox (id, customer_key, kind, payload, created_at, "
                "published_at) VALUES (:id, 'c-1', 'action', '{}', :created, :published)"
            ),
            {"id": row_id, "created": created, "published": published},
        )
    return row_id


async def add_event(sessions: Sessions, *, timestamp: datetime, received: datetime) -> uuid.UUID:
    event_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO engine.events (event_id, customer_key, source, message_id, call, "
                "event, \"timestamp\", received_at, payload) VALUES (:id, 'c-1', 'shop', "
                ":message, 'track', 'Product Viewed', :ts, :received, '{}')"
            ),
            {"id": event_id, "message": str(event_id), "ts": timestamp, "received": received},
        )
    return event_id


async def outbox_ids(sessions: Sessions) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(text("SELECT id FROM engine.outbox"))).all())


async def event_ids(sessions: Sessions) -> set[uuid.UUID]:
    async with sessions() as session:
        return set((await session.scalars(text("SELECT event_id FROM engine.events"))).all())


def deleted_total(table: str) -> float:
    value = REGISTRY.get_sample_value("clm_engine_retention_deleted_total", {"table": table})
    return value or 0.0


def policy(*, outbox_days: int = 0, event_days: int = 0, batch: int = 1000) -> RetentionPolicy:
    return RetentionPolicy(outbox_days=outbox_days, event_days=event_days, batch=batch)


async def test_old_published_outbox_rows_are_deleted_unpublished_and_recent_kept(
    sessions: Sessions,
) -> None:
    old = {
        await add_outbox(sessions, created=ago(11), published=ago(10)),
        await add_outbox(sessions, created=ago(8), published=ago(7.5)),
    }
    kept = {
        await add_outbox(sessions, created=ago(30), published=None),
        await add_outbox(sessions, created=ago(400), published=None),
        await add_outbox(sessions, created=ago(9), published=ago(6)),
        await add_outbox(sessions, created=NOW, published=NOW),
        await add_outbox(sessions, created=NOW, published=None),
    }
    event = await add_event(sessions, timestamp=ago(900), received=ago(900))
    before = deleted_total("outbox")

    result = await retention_round(sessions, policy(outbox_days=7), now=NOW)

    assert result.deleted == {"outbox": 2}
    assert not result.busy
    assert await outbox_ids(sessions) == kept
    assert not old & await outbox_ids(sessions)
    assert await event_ids(sessions) == {event}, "event retention 0 keeps events"
    assert deleted_total("outbox") - before == 2


async def test_old_events_are_deleted_recent_and_backfilled_kept(sessions: Sessions) -> None:
    old = {
        await add_event(sessions, timestamp=ago(500), received=ago(500)),
        await add_event(sessions, timestamp=ago(402), received=ago(401)),
    }
    kept = {
        # backfilled: happened long ago, arrived yesterday (a redelivery must still dedupe)
        await add_event(sessions, timestamp=ago(500), received=ago(1)),
        # received long ago with a timestamp inside retention (client clock ahead)
        await add_event(sessions, timestamp=ago(10), received=ago(500)),
        await add_event(sessions, timestamp=ago(399), received=ago(399)),
        await add_event(sessions, timestamp=ago(1), received=ago(1)),
    }
    row = await add_outbox(sessions, created=ago(900), published=ago(900))
    before = deleted_total("events")

    result = await retention_round(sessions, policy(event_days=400), now=NOW)

    assert result.deleted == {"events": 2}
    assert await event_ids(sessions) == kept
    assert not old & await event_ids(sessions)
    assert await outbox_ids(sessions) == {row}, "outbox retention 0 keeps published rows"
    assert deleted_total("events") - before == 2


async def test_retention_zero_deletes_nothing(sessions: Sessions) -> None:
    rows = {await add_outbox(sessions, created=ago(3000), published=ago(3000))}
    events = {await add_event(sessions, timestamp=ago(3000), received=ago(3000))}

    result = await retention_round(sessions, policy(), now=NOW)

    assert result.deleted == {}
    assert await outbox_ids(sessions) == rows
    assert await event_ids(sessions) == events


async def test_a_backlog_is_deleted_batch_by_batch_until_none_is_left(sessions: Sessions) -> None:
    for _ in range(7):
        await add_outbox(sessions, created=ago(20), published=ago(20))
        await add_event(sessions, timestamp=ago(800), received=ago(800))
    kept = {await add_outbox(sessions, created=ago(1), published=ago(1))}

    result = await retention_round(
        sessions, policy(outbox_days=7, event_days=400, batch=3), now=NOW
    )

    assert result.deleted == {"outbox": 7, "events": 7}
    assert await outbox_ids(sessions) == kept
    assert await event_ids(sessions) == set()


async def test_a_round_skips_while_another_instance_holds_the_lock(sessions: Sessions) -> None:
    row = await add_outbox(sessions, created=ago(20), published=ago(20))
    event = await add_event(sessions, timestamp=ago(800), received=ago(800))
    retention = policy(outbox_days=7, event_days=400)

    async with sessions() as other, other.begin():
        await other.execute(text(LOCK))
        busy = await asyncio.wait_for(retention_round(sessions, retention, now=NOW), 10)
        assert busy.busy
        assert sum(busy.deleted.values()) == 0
        assert await outbox_ids(sessions) == {row}
        assert await event_ids(sessions) == {event}

    result = await retention_round(sessions, retention, now=NOW)
    assert not result.busy
    assert result.deleted == {"outbox": 1, "events": 1}


async def test_rows_another_transaction_holds_are_skipped_not_waited_for(
    sessions: Sessions,
) -> None:
    held = await add_event(sessions, timestamp=ago(800), received=ago(800))
    free = await add_event(sessions, timestamp=ago(800), received=ago(800))
    retention = policy(event_days=400)

    async with sessions() as consumer, consumer.begin():
        # what a batch merging this customer does: it updates the customer's stored events
        await consumer.execute(
            text("UPDATE engine.events SET customer_key = 'c-2' WHERE event_id = :id"),
            {"id": held},
        )
        result = await asyncio.wait_for(retention_round(sessions, retention, now=NOW), 10)
        assert result.deleted == {"events": 1}
        assert free not in await event_ids(sessions)

    assert await event_ids(sessions) == {held}
    result = await retention_round(sessions, retention, now=NOW)
    assert result.deleted == {"events": 1}
    assert await event_ids(sessions) == set()


async def test_oldest_age_gauges_show_what_is_kept(sessions: Sessions) -> None:
    assert await oldest_ages(sessions, now=NOW) == {"outbox": 0.0, "events": 0.0}
    await add_outbox(sessions, created=ago(40), published=None)
    await add_outbox(sessions, created=ago(20), published=ago(20))
    await add_outbox(sessions, created=ago(6), published=ago(5))
    await add_event(sessions, timestamp=ago(800), received=ago(800))
    await add_event(sessions, timestamp=ago(800), received=ago(3))

    await retention_round(sessions, policy(outbox_days=7, event_days=400), now=NOW)
    ages = await oldest_ages(sessions, now=NOW)

    day = timedelta(days=1).total_seconds()
    assert ages == {"outbox": pytest.approx(5 * day), "events": pytest.approx(3 * day)}
    for table, age in ages.items():
        gauge = REGISTRY.get_sample_value(
            "clm_engine_retention_oldest_age_seconds", {"table": table}
        )
        assert gauge == pytest.approx(age)


async def test_the_job_runs_a_round_at_start_and_stops_when_asked(sessions: Sessions) -> None:
    await add_outbox(sessions, created=ago(20), published=ago(20))
    kept = {await add_outbox(sessions, created=ago(1), published=ago(1))}
    stop = asyncio.Event()
    job = asyncio.create_task(run_retention(sessions, policy(outbox_days=7), stop, every=3600.0))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while await outbox_ids(sessions) != kept:
            assert not job.done(), job
            assert asyncio.get_running_loop().time() < deadline, "the job deleted nothing"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(job, 10)


def test_event_retention_shorter_than_a_month_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 30 days"):
        EngineSettings(event_retention_days=3)
    assert EngineSettings(event_retention_days=0).event_retention_days == 0
    assert EngineSettings(event_retention_days=30).event_retention_days == 30
