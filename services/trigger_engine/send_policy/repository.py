"""Send policy versions (see :mod:`~services.trigger_engine.versioned_config`). Callers own the
transaction.

A stored policy that no longer validates (e.g. a time zone this host's tz database lacks) is
replaced by the default, which still checks consent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.policy import NO_POLICY, SendPolicy
from services.trigger_engine.send_policy.models import SendPolicyVersionRow
from services.trigger_engine.versioned_config import VersionedConfig

SEND_POLICY: Final = VersionedConfig(
    label="send policy",
    root="send_policy",
    table=cast(Table, SendPolicyVersionRow.__table__),
    column="policy",
    schema=SendPolicy,
    default=lambda: NO_POLICY,
)


async def current(session: AsyncSession) -> tuple[int, SendPolicy]:
    """The newest stored policy and its version; ``(0, default)`` when none was stored."""
    return await SEND_POLICY.current(session)


async def store(session: AsyncSession, policy: SendPolicy, *, now: datetime) -> int:
    """Store ``policy`` as the next version (serialized by a transaction-scoped lock)."""
    return await SEND_POLICY.store(session, policy, now=now)
