"""Retention of the outbox and the event store: old rows deleted in small batches.

What goes (``now`` minus the table's retention is the *cutoff*):

- ``engine.outbox``: rows published before the cutoff. Unpublished rows are never deleted,
  however old: they are actions not yet on ``clm.actions``.
- ``engine.events`` (commerce events) and ``engine.event_log`` (the others, a row per
  customer and checkpoint): events whose ``received_at`` *and* event time are both before
  the cutoff. ``received_at`` keeps every event the topic may still hold (a partition
  re-read from an old offset still finds its events' rows); the event time keeps
  backfilled history (old events received recently) for the timelines, simulations and
  lifecycle metrics that read it by event time.

A retention of 0 days keeps the table forever.

Each statement deletes at most ``batch`` rows in its own short transaction, locking only the
rows it deletes and skipping rows another transaction holds (a batch merging a customer, an
erasure), so it never waits on, nor holds up, the consumer for long. Every transaction first
takes a transaction-scoped advisory lock: with several engine instances, one deletes at a
time and the others skip their round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.settings import EngineSettings
from shared.db import transaction

log = logging.getLogger(__name__)

#: One retention transaction at a time across every engine instance.
_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('engine.retention'))")
#: Never queue behind a table lock (a migration): fail the round, the job retries later.
_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '5s'")

#: What each retention deletes: the outbox; the event store's two tables.
_DELETE: Final[dict[str, tuple[TextClause, ...]]] = {
    "outbox": (
        text(
            "DELETE FROM engine.outbox WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM engine.outbox WHERE published_at < :cutoff "
            "LIMIT :limit FOR UPDATE SKIP LOCKED))"
        ),
    ),
    "events": (
        text(
            "DELETE FROM engine.events WHERE ctid = ANY(ARRAY("
            'SELECT ctid FROM engine.events WHERE received_at < :cutoff AND "timestamp" < :cutoff '
            "LIMIT :limit FOR UPDATE SKIP LOCKED))"
        ),
        text(
            "DELETE FROM engine.event_log WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM engine.event_log WHERE received_at < :cutoff AND last_at < :cutoff "
            "LIMIT :limit FOR UPDATE SKIP LOCKED))"
        ),
    ),
}

#: The oldest row each table's retention looks at (both read one end of an index).
_OLDEST: Final[dict[str, TextClause]] = {
    "outbox": text("SELECT min(published_at) FROM engine.outbox WHERE published_at IS NOT NULL"),
    "events": text(
        "SELECT least((SELECT min(received_at) FROM engine.events), "
        "(SELECT min(received_at) FROM engine.event_log))"
    ),
}


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each table keeps its rows (0: forever), and rows per delete statement."""

    outbox_days: int
    event_days: int
    batch: int

    @classmethod
    def of(cls, settings: EngineSettings) -> RetentionPolicy:
        return cls(
            outbox_days=settings.outbox_retention_days,
            event_days=settings.event_retention_days,
            batch=settings.retention_batch,
        )

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """The tables with a retention, and the time before which their rows go."""
        days = {"outbox": self.outbox_days, "events": self.event_days}
        return {table: now - timedelta(days=n) for table, n in days.items() if n > 0}


@dataclass
class RoundResult:
    deleted: dict[str, int] = field(default_factory=dict)
    #: another instance held the retention lock, so this round stopped early
    busy: bool = False


async def _delete_batch(
    sessions: async_sessionmaker[AsyncSession],
    statement: TextClause,
    *,
    cutoff: datetime,
    limit: int,
) -> int | None:
    """Delete up to ``limit`` rows before ``cutoff``; None if another instance holds the
    retention lock."""
    async with transaction(sessions) as session:
        if not await session.scalar(_LOCK):
            return None
        await session.execute(_LOCK_TIMEOUT)
        result = await session.execute(statement, {"cutoff": cutoff, "limit": limit})
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def retention_round(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    *,
    now: datetime,
    stop: asyncio.Event | None = None,
) -> RoundResult:
    """Delete what is past retention at ``now``, batch by batch, until nothing is left,
    ``stop`` is set or another instance is deleting."""
    result = RoundResult()
    for table, cutoff in policy.cutoffs(now).items():
        total = 0
        for statement in _DELETE[table]:
            while stop is None or not stop.is_set():
                deleted = await _delete_batch(
                    sessions, statement, cutoff=cutoff, limit=policy.batch
                )
                if deleted is None:
                    result.busy = True
                    break
                total += deleted
                m.RETENTION_DELETED.labels(table).inc(deleted)
                if deleted < policy.batch:
                    break
            if result.busy:
                break
        result.deleted[table] = total
        if result.busy:
            break
    return result


async def oldest_ages(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime
) -> dict[str, float]:
    """Seconds since the oldest row of each table (0 when empty); sets the gauges."""
    ages: dict[str, float] = {}
    async with sessions() as session:
        for table, query in _OLDEST.items():
            oldest: datetime | None = await session.scalar(query)
            ages[table] = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
            m.RETENTION_OLDEST_AGE.labels(table).set(ages[table])
    return ages


async def run_retention(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    stop: asyncio.Event,
    *,
    every: float,
) -> None:
    """A round at start, then one every ``every`` seconds, until ``stop``."""
    while not stop.is_set():
        result = await retention_round(sessions, policy, now=datetime.now(UTC), stop=stop)
        if any(result.deleted.values()):
            log.info("retention deleted rows", extra={"deleted": result.deleted})
        if result.busy:
            log.debug("retention running on another instance")
        await oldest_ages(sessions, now=datetime.now(UTC))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
