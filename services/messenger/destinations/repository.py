"""Destinations in PostgreSQL. Functions add and flush; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.destinations.models import Destination


def new_id() -> str:
    return "dst_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class DestinationValues:
    channel: str
    url: str
    secret_encrypted: str
    name: str | None
    rate_limit_per_second: float
    max_concurrency: int
    enabled: bool


async def _has_default(session: AsyncSession, channel: str, *, besides: str | None) -> bool:
    query = select(
        exists().where(
            Destination.channel == channel,
            Destination.is_default.is_(True),
            Destination.id != (besides or ""),
        )
    )
    return bool(await session.scalar(query))


async def _clear_default(session: AsyncSession, channel: str, *, besides: str) -> None:
    await session.execute(
        update(Destination)
        .where(
            Destination.channel == channel,
            Destination.is_default.is_(True),
            Destination.id != besides,
        )
        .values(is_default=False)
    )


async def create(
    session: AsyncSession, values: DestinationValues, *, default: bool | None, now: datetime
) -> Destination:
    dest_id = new_id()
    if default is None:
        default = not await _has_default(session, values.channel, besides=None)
    elif default:
        await _clear_default(session, values.channel, besides=dest_id)
    row = Destination(
        id=dest_id,
        channel=values.channel,
        url=values.url,
        secret_encrypted=values.secret_encrypted,
        name=values.name,
        rate_limit_per_second=values.rate_limit_per_second,
        max_concurrency=values.max_concurrency,
        enabled=values.enabled,
        is_default=default,
        disabled_reason=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def replace(
    session: AsyncSession,
    row: Destination,
    values: DestinationValues,
    *,
    default: bool | None,
    now: datetime,
) -> Destination:
    channel_changed = values.channel != row.channel
    if default is None:
        default = row.is_default and not channel_changed
        if channel_changed and not await _has_default(session, values.channel, besides=row.id):
            default = True
    if default:
        await _clear_default(session, values.channel, besides=row.id)
    row.channel = values.channel
    row.url = values.url
    row.secret_encrypted = values.secret_encrypted
    row.name = values.name
    row.rate_limit_per_second = values.rate_limit_per_second
    row.max_concurrency = values.max_concurrency
    if values.enabled and not row.enabled:
        row.disabled_reason = None
    row.enabled = values.enabled
    row.is_default = default
    row.updated_at = now
    await session.flush()
    return row


async def get(
    session: AsyncSession, dest_id: str, *, for_update: bool = False
) -> Destination | None:
    query = select(Destination).where(Destination.id == dest_id)
    if for_update:
        query = query.with_for_update()
    result: Destination | None = await session.scalar(query)
    return result


async def list_all(session: AsyncSession, *, channel: str | None = None) -> list[Destination]:
    query = select(Destination).order_by(Destination.created_at, Destination.id)
    if channel is not None:
        query = query.where(Destination.channel == channel)
    return list(await session.scalars(query))


async def remove(session: AsyncSession, dest_id: str) -> bool:
    result = await session.execute(
        delete(Destination).where(Destination.id == dest_id).returning(Destination.id)
    )
    return result.first() is not None


async def set_enabled(
    session: AsyncSession, dest_id: str, *, enabled: bool, now: datetime
) -> Destination | None:
    row = await get(session, dest_id, for_update=True)
    if row is None:
        return None
    if enabled and not row.enabled:
        row.disabled_reason = None
    if row.enabled != enabled:
        row.enabled = enabled
        row.updated_at = now
    await session.flush()
    return row


async def disable(session: AsyncSession, dest_id: str, *, reason: str, now: datetime) -> None:
    await session.execute(
        update(Destination)
        .where(Destination.id == dest_id, Destination.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason[:500], updated_at=now)
    )


async def defaults_by_channel(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(
        select(Destination.channel, Destination.id).where(Destination.is_default.is_(True))
    )
    return {channel: dest_id for channel, dest_id in rows}
