"""The rejected-input store (``ingest.rejected``): written beside every dead letter, read by
``GET /v1/rejected``, pruned after the retention window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.models import RejectedInput
from shared.envelope import DeadLetterV1
from shared.ids import derive_id

PRUNE_CHUNK = 10_000


def _text(value: str) -> str:
    """PostgreSQL text (and JSONB) cannot hold NUL: shown as U+FFFD, as other bad bytes are."""
    return value.replace("\x00", "\ufffd")


def rejection_id(letter: DeadLetterV1) -> uuid.UUID:
    """A Kafka record's rejection has the same id however often the record is read again
    (the consumer retries a batch after a failure); an HTTP rejection is one of a kind."""
    if letter.partition is None or letter.offset is None:
        return uuid.uuid4()
    return derive_id("rejected", letter.origin, letter.partition, letter.offset, letter.index)


async def record(session: AsyncSession, letters: Sequence[DeadLetterV1]) -> None:
    rows = [
        {
            "id": rejection_id(letter),
            "rejected_at": letter.rejected_at,
            "source": None if letter.source is None else _text(letter.source),
            "origin": _text(letter.origin),
            "partition": letter.partition,
            "offset": letter.offset,
            "index": letter.index,
            "code": _text(letter.code),
            "reason": _text(letter.reason),
            "errors": [_text(error) for error in letter.errors],
            "payload": _text(letter.payload),
        }
        for letter in letters
    ]
    if rows:
        await session.execute(insert(RejectedInput).values(rows).on_conflict_do_nothing())


async def page(
    session: AsyncSession,
    *,
    source: str | None,
    since: datetime | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RejectedInput]:
    """Newest first."""
    query = select(RejectedInput).order_by(
        RejectedInput.rejected_at.desc(), RejectedInput.id.desc()
    )
    if source is not None:
        query = query.where(RejectedInput.source == source)
    if since is not None:
        query = query.where(RejectedInput.rejected_at >= since)
    if before is not None:
        query = query.where(tuple_(RejectedInput.rejected_at, RejectedInput.id) < before)
    return list(await session.scalars(query.limit(limit)))


async def prune(sessions: async_sessionmaker[AsyncSession], *, older_than: datetime) -> int:
    """Delete what was rejected before ``older_than``, a bounded chunk per transaction."""
    total = 0
    while True:
        chunk = (
            select(RejectedInput.id)
            .where(RejectedInput.rejected_at < older_than)
            .limit(PRUNE_CHUNK)
            .scalar_subquery()
        )
        async with sessions() as session, session.begin():
            result = await session.execute(delete(RejectedInput).where(RejectedInput.id.in_(chunk)))
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if deleted < PRUNE_CHUNK:
            return total
