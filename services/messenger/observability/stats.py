"""Refresh the gauges that need a database count (statuses, backlogs, error ratios)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.context import MessengerContext
from services.messenger.deliveries.status import Status
from services.messenger.observability import metrics

log = logging.getLogger(__name__)

_BY_STATUS = text("SELECT status, count(*) FROM messenger.deliveries GROUP BY status")
_DUE = text(
    "SELECT count(*) FROM messenger.deliveries "
    "WHERE status IN ('pending', 'retrying') AND next_attempt_at <= :now"
)
_ERRORS = text(
    "SELECT destination_id, count(*) FILTER (WHERE outcome <> 'delivered'), count(*) "
    "FROM messenger.delivery_attempts WHERE started_at >= :since AND destination_id IS NOT NULL "
    "GROUP BY destination_id"
)


async def refresh(
    session: AsyncSession, *, now: datetime, window: timedelta, known: set[str]
) -> None:
    """Set every gauge; ``known`` holds the destinations given an error ratio so far (one
    quiet for a whole window drops back to 0)."""
    counts = {status: n for status, n in await session.execute(_BY_STATUS)}
    for status in Status:
        metrics.DELIVERIES.labels(status.value).set(counts.get(status.value, 0))
    metrics.RETRY_BACKLOG.set(counts.get(Status.RETRYING.value, 0))
    metrics.DEAD.set(counts.get(Status.DEAD.value, 0))
    metrics.DUE_BACKLOG.set(await session.scalar(_DUE, {"now": now}) or 0)
    seen: set[str] = set()
    for destination, errors, total in await session.execute(_ERRORS, {"since": now - window}):
        metrics.ERROR_RATIO.labels(destination).set(errors / total if total else 0.0)
        seen.add(destination)
    for destination in known - seen:
        metrics.ERROR_RATIO.labels(destination).set(0.0)
    known |= seen


async def run_stats(ctx: MessengerContext, stop: asyncio.Event) -> None:
    window = timedelta(seconds=ctx.settings.error_rate_window_seconds)
    known: set[str] = set()
    while not stop.is_set():
        try:
            async with ctx.sessions() as session:
                await refresh(session, now=datetime.now(UTC), window=window, known=known)
        except Exception as exc:  # metrics must never take the service down
            log.warning("refreshing messenger gauges failed", extra={"error": repr(exc)})
        try:
            async with asyncio.timeout(ctx.settings.stats_interval_seconds):
                await stop.wait()
        except TimeoutError:
            pass
