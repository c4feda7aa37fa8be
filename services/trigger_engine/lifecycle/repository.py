"""Lifecycle model versions. Callers own the transaction."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.lifecycle import LifecycleModel, default_lifecycle
from services.trigger_engine.lifecycle.models import LifecycleVersionRow

log = logging.getLogger(__name__)


async def current(session: AsyncSession) -> tuple[int, LifecycleModel]:
    """The newest stored model and its version; ``(0, default)`` when none was stored."""
    row = await session.scalar(
        select(LifecycleVersionRow).order_by(LifecycleVersionRow.version.desc()).limit(1)
    )
    if row is None:
        return 0, default_lifecycle()
    try:
        return row.version, LifecycleModel.model_validate(row.model)
    except ValidationError as exc:
        # Never stop the engine over a stale model: fall back to the contract's default.
        log.error(
            "stored lifecycle model no longer valid; using the default", extra={"error": str(exc)}
        )
        return row.version, default_lifecycle()


async def store(session: AsyncSession, model: LifecycleModel, *, now: datetime) -> int:
    """Store ``model`` as the next version (serialized by a transaction-scoped lock)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('engine.lifecycle'))"))
    latest = await session.scalar(
        select(LifecycleVersionRow.version).order_by(LifecycleVersionRow.version.desc()).limit(1)
    )
    version = (latest or 0) + 1
    session.add(
        LifecycleVersionRow(version=version, model=model.model_dump(mode="json"), created_at=now)
    )
    await session.flush()
    return version
