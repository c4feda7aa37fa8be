"""Managed templates in PostgreSQL. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.delivery.templates import TemplateSource
from services.messenger.templates_store.models import Template


def source_of(row: Template) -> TemplateSource:
    return TemplateSource(subject=row.subject, text=row.text, html=row.html)


async def sources(session: AsyncSession, names: Iterable[str]) -> dict[str, TemplateSource]:
    wanted = set(names)
    if not wanted:
        return {}
    rows = await session.scalars(select(Template).where(Template.name.in_(wanted)))
    return {row.name: source_of(row) for row in rows}


async def get(session: AsyncSession, name: str, *, for_update: bool = False) -> Template | None:
    query = select(Template).where(Template.name == name)
    if for_update:
        query = query.with_for_update()
    row: Template | None = await session.scalar(query)
    return row


async def list_all(session: AsyncSession) -> list[Template]:
    return list(await session.scalars(select(Template).order_by(Template.name)))


async def create(
    session: AsyncSession, name: str, source: TemplateSource, *, now: datetime
) -> Template:
    row = Template(
        name=name,
        subject=source.subject,
        text=source.text,
        html=source.html,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def replace(
    session: AsyncSession, row: Template, source: TemplateSource, *, now: datetime
) -> Template:
    row.subject, row.text, row.html = source.subject, source.text, source.html
    row.version += 1
    row.updated_at = now
    await session.flush()
    return row


async def remove(session: AsyncSession, name: str) -> bool:
    result = await session.execute(
        delete(Template).where(Template.name == name).returning(Template.name)
    )
    return result.first() is not None
