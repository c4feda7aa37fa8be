"""Suppressions in PostgreSQL. The caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.suppressions.models import Suppression
from services.messenger.suppressions.rules import Kind, Subject


async def matching(session: AsyncSession, subjects: Iterable[Subject]) -> dict[Subject, str]:
    """The suppressed ones among ``subjects``, with their reason."""
    wanted = {(channel, kind.value, value) for channel, kind, value in subjects}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Suppression.channel, Suppression.kind, Suppression.value, Suppression.reason).where(
            tuple_(Suppression.channel, Suppression.kind, Suppression.value).in_(list(wanted))
        )
    )
    return {(c, Kind(k), v): reason for c, k, v, reason in rows}


async def add(
    session: AsyncSession,
    subject: Subject,
    *,
    reason: str,
    source: str,
    now: datetime,
    destination_id: str | None = None,
    note: str | None = None,
) -> tuple[Suppression, bool]:
    """Suppress ``subject``; returns (row, created). An existing row keeps its first reason
    unless the new one is a complaint (the strongest signal)."""
    channel, kind, value = subject
    inserted = await session.scalar(
        insert(Suppression)
        .values(
            id=uuid.uuid4(),
            channel=channel,
            kind=kind.value,
            value=value,
            reason=reason,
            source=source,
            destination_id=destination_id,
            note=note,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["channel", "kind", "value"])
        .returning(Suppression.id)
    )
    row = await find(session, subject)
    assert row is not None
    if inserted is None and reason == "complained" and row.reason != reason:
        row.reason = reason
        await session.flush()
    return row, inserted is not None


async def find(session: AsyncSession, subject: Subject) -> Suppression | None:
    channel, kind, value = subject
    result: Suppression | None = await session.scalar(
        select(Suppression).where(
            Suppression.channel == channel,
            Suppression.kind == kind.value,
            Suppression.value == value,
        )
    )
    return result


async def list_page(
    session: AsyncSession,
    *,
    channel: str | None,
    kind: Kind | None,
    value: str | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[Suppression]:
    query = select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc())
    if channel is not None:
        query = query.where(Suppression.channel == channel)
    if kind is not None:
        query = query.where(Suppression.kind == kind.value)
    if value is not None:
        query = query.where(Suppression.value == value)
    if before is not None:
        query = query.where(tuple_(Suppression.created_at, Suppression.id) < before)
    return list(await session.scalars(query.limit(limit)))


async def remove_by_id(session: AsyncSession, suppression_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Suppression).where(Suppression.id == suppression_id).returning(Suppression.id)
    )
    return result.first() is not None


async def remove(session: AsyncSession, subject: Subject) -> bool:
    channel, kind, value = subject
    result = await session.execute(
        delete(Suppression)
        .where(
            Suppression.channel == channel,
            Suppression.kind == kind.value,
            Suppression.value == value,
        )
        .returning(Suppression.id)
    )
    return result.first() is not None
