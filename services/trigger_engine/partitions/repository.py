"""Partition watermarks in PostgreSQL (``engine.partitions``). Callers own the transaction.

A watermark only moves forward (``GREATEST``), whoever writes it: the consumer that owns the
partition now, or one that owned it before a rebalance and is finishing its last batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ENSURE = text(
    "INSERT INTO engine.partitions (topic, partition) "
    "SELECT :topic, p FROM generate_series(0, :count - 1) AS p ON CONFLICT DO NOTHING"
)

_ADVANCE = text(
    "INSERT INTO engine.partitions AS p (topic, partition, watermark, updated_at) "
    "SELECT t, n, w, CAST(:now AS timestamptz) FROM unnest(CAST(:topics AS text[]), "
    "CAST(:partitions AS int[]), CAST(:marks AS timestamptz[])) AS x(t, n, w) "
    "ON CONFLICT (topic, partition) DO UPDATE SET "
    "watermark = GREATEST(p.watermark, excluded.watermark), updated_at = excluded.updated_at "
    "WHERE p.watermark IS NULL OR p.watermark < excluded.watermark"
)

#: The watermark timers fire by: the lowest partition's. A partition without one yet (no
#: consumer has established it) holds every timer back; no row at all means no consumer has
#: seen the topic, and NULL compares as false.
TIMERS_WATERMARK = (
    "(SELECT min(coalesce(watermark, '-infinity'::timestamptz)) FROM engine.partitions "
    "WHERE topic = :topic)"
)

_WATERMARKS = text(
    "SELECT partition, watermark FROM engine.partitions WHERE topic = :topic ORDER BY partition"
)


async def ensure(session: AsyncSession, topic: str, count: int) -> None:
    """Make sure each of the topic's ``count`` partitions has a row (so that one nobody
    consumed yet holds timers back instead of being overlooked)."""
    if count > 0:
        await session.execute(_ENSURE, {"topic": topic, "count": count})


async def advance(
    session: AsyncSession, marks: Mapping[tuple[str, int], datetime], *, now: datetime
) -> None:
    """Move each ``(topic, partition)``'s watermark forward to ``marks``' (never back)."""
    if not marks:
        return
    keys = sorted(marks)  # one lock order for every writer
    await session.execute(
        _ADVANCE,
        {
            "now": now,
            "topics": [topic for topic, _ in keys],
            "partitions": [partition for _, partition in keys],
            "marks": [marks[key] for key in keys],
        },
    )


async def watermarks(session: AsyncSession, topic: str) -> dict[int, datetime | None]:
    rows = await session.execute(_WATERMARKS, {"topic": topic})
    return {partition: mark for partition, mark in rows}
