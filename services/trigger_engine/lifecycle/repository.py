"""Lifecycle model versions (see :mod:`~services.trigger_engine.versioned_config`). Callers own
the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.lifecycle import LifecycleModel, default_lifecycle
from services.trigger_engine.lifecycle.models import LifecycleVersionRow
from services.trigger_engine.versioned_config import VersionedConfig

LIFECYCLE: Final = VersionedConfig(
    label="lifecycle model",
    root="lifecycle",
    table=cast(Table, LifecycleVersionRow.__table__),
    column="model",
    schema=LifecycleModel,
    default=default_lifecycle,
)


async def current(session: AsyncSession) -> tuple[int, LifecycleModel]:
    """The newest stored model and its version; ``(0, default)`` when none was stored."""
    return await LIFECYCLE.current(session)


async def stored_at(session: AsyncSession, version: int) -> datetime | None:
    """When ``version`` was stored (None for version 0, the default model)."""
    return await LIFECYCLE.stored_at(session, version)


async def latest_version(session: AsyncSession) -> int:
    """The newest stored version number; 0 when none was stored (the default model)."""
    return await LIFECYCLE.latest_version(session)


async def store(session: AsyncSession, model: LifecycleModel, *, now: datetime) -> int:
    """Store ``model`` as the next version (serialized by a transaction-scoped lock)."""
    return await LIFECYCLE.store(session, model, now=now)
