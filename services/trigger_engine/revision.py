"""The engine configuration's revision: one number that moves when a change commits.

Every transaction that changes a rule, the lifecycle model or the send policy calls
:func:`bump`; the value comes from a sequence and becomes visible with the change itself,
so an instance that reads a new revision always finds the change (unlike a timestamp, which
a clock behind the others could hide).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CURRENT = text("SELECT revision FROM engine.config_revision WHERE id = 1")
_BUMP = text(
    "UPDATE engine.config_revision SET revision = nextval('engine.config_revision_seq') "
    "WHERE id = 1"
)


async def bump(session: AsyncSession) -> None:
    """Say, in the caller's transaction, that the engine configuration changed."""
    await session.execute(_BUMP)
