"""Claiming released timers with a lease, and re-reading the claims inside the firing
transaction. A timer is released once it is due and the partitions' watermark has passed its
``release_at`` (see ``partitions/watermark.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.inputs import TimerKind
from services.trigger_engine.partitions.repository import TIMERS_WATERMARK

_CLAIM = text(
    "UPDATE engine.timers AS t SET claimed_by = :me, claimed_until = CAST(:until AS timestamptz) "
    "WHERE t.timer_id IN (SELECT timer_id FROM engine.timers "
    f"WHERE release_at <= {TIMERS_WATERMARK} AND due_at <= CAST(:now AS timestamptz) "
    "AND (claimed_until IS NULL OR claimed_until < CAST(:now AS timestamptz)) "
    "ORDER BY release_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "RETURNING t.timer_id, t.customer_key"
)

_MINE = text(
    "SELECT timer_id, customer_key, kind, run_id, due_at FROM engine.timers "
    "WHERE timer_id = ANY(CAST(:ids AS text[])) AND claimed_by = :me "
    "ORDER BY due_at, timer_id FOR UPDATE"
)

_COUNTS = text(
    "SELECT (SELECT count(*) FROM engine.timers WHERE release_at <= now()), "
    "(SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'engine.timers'::regclass)"
)


@dataclass(frozen=True)
class Claimed:
    timer_id: str
    customer_key: str
    kind: TimerKind
    run_id: str | None
    due_at: datetime


async def claim(
    session: AsyncSession,
    *,
    me: str,
    topic: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[tuple[str, str]]:
    """Reserve up to ``limit`` released timers for ``me`` (unclaimed or with an expired
    lease): due by ``now``, and passed by the watermark of every partition of ``topic``."""
    rows = await session.execute(
        _CLAIM, {"me": me, "topic": topic, "now": now, "until": now + lease, "limit": limit}
    )
    return [(timer_id, key) for timer_id, key in rows]


async def still_mine(session: AsyncSession, ids: Sequence[str], *, me: str) -> list[Claimed]:
    """The claimed timers still pending and still ours, locked, in due order.

    A timer cancelled by an event committed in the meantime is gone; one moved by a merge
    or re-set lost its claim; one whose lease ran out may have been taken by another worker.
    """
    rows = await session.execute(_MINE, {"ids": list(ids), "me": me})
    return [Claimed(*row) for row in rows]


async def park(session: AsyncSession, timer_id: str, *, until: datetime, reason: str) -> None:
    """Keep a timer that keeps failing out of the way until ``until`` (then it is retried)."""
    await session.execute(
        text(
            "UPDATE engine.timers SET claimed_by = :who, claimed_until = :until "
            "WHERE timer_id = :id"
        ),
        {"who": f"parked: {reason}"[:500], "until": until, "id": timer_id},
    )


async def counts(session: AsyncSession) -> tuple[int, int]:
    """(released by the clock and not fired, pending in total: the planner's estimate, cheap
    on big tables)."""
    due, total = (await session.execute(_COUNTS)).one()
    return int(due), int(total)
