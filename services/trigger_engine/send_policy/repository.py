"""Send policy versions. Callers own the transaction."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.policy import NO_POLICY, SendPolicy
from services.trigger_engine.send_policy.models import SendPolicyVersionRow

log = logging.getLogger(__name__)


async def current(session: AsyncSession) -> tuple[int, SendPolicy]:
    """The newest stored policy and its version; ``(0, default)`` when none was stored."""
    row = await session.scalar(
        select(SendPolicyVersionRow).order_by(SendPolicyVersionRow.version.desc()).limit(1)
    )
    if row is None:
        return 0, NO_POLICY
    try:
        return row.version, SendPolicy.model_validate(row.policy)
    except ValidationError as exc:
        # E.g. a time zone this host's tz database lacks. Never stop the engine over it; the
        # default still checks consent.
        log.error(
            "stored send policy no longer valid; using the default", extra={"error": str(exc)}
        )
        return row.version, NO_POLICY


async def store(session: AsyncSession, policy: SendPolicy, *, now: datetime) -> int:
    """Store ``policy`` as the next version (serialized by a transaction-scoped lock)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('engine.send_policy'))"))
    latest = await session.scalar(
        select(SendPolicyVersionRow.version).order_by(SendPolicyVersionRow.version.desc()).limit(1)
    )
    version = (latest or 0) + 1
    session.add(
        SendPolicyVersionRow(version=version, policy=policy.model_dump(mode="json"), created_at=now)
    )
    await session.flush()
    return version
