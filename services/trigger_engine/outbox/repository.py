"""Outbox rows: written by partition owners (``stream/``); the backlog for the gauge."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def backlog(session: AsyncSession) -> int:
    value = await session.scalar(
        text("SELECT count(*) FROM engine.outbox WHERE published_at IS NULL")
    )
    return int(value or 0)
