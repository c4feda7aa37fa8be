"""Backlog gauges, refreshed periodically (cheap counts on indexed tables)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.outbox import repository as outbox
from services.trigger_engine.partitions import repository as partitions
from services.trigger_engine.timers import repository as timers


async def refresh(sessions: async_sessionmaker[AsyncSession], *, topic: str) -> None:
    async with sessions() as session:
        due, pending = await timers.counts(session)
        m.TIMER_BACKLOG.set(due)
        m.TIMERS_PENDING.set(pending)
        m.OUTBOX_BACKLOG.set(await outbox.backlog(session))
        marks = await partitions.watermarks(session, topic)
    now = datetime.now(UTC)
    for partition, mark in marks.items():
        lag = (now - mark).total_seconds() if mark is not None else math.nan
        m.WATERMARK_LAG.labels(str(partition)).set(lag)


async def run_gauges(
    sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event, *, every: float, topic: str
) -> None:
    while not stop.is_set():
        await refresh(sessions, topic=topic)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
