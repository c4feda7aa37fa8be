"""Lifecycle passes (``engine.lifecycle_passes``): one row per lifecycle model version whose
customers are being, or were, re-evaluated. Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_COLUMNS: Final = (
    "version, cursor, total, customers, transitions, started_at, updated_at, finished_at"
)

_LOCK_UNFINISHED = text(
    f"SELECT {_COLUMNS} FROM engine.lifecycle_passes "
    "WHERE version = :version AND finished_at IS NULL FOR UPDATE SKIP LOCKED"
)

_EXISTS = text("SELECT 1 FROM engine.lifecycle_passes WHERE version = :version")

# The row lock of the inserted row is this transaction's until it commits.
_CREATE = text(
    "INSERT INTO engine.lifecycle_passes "
    "(version, cursor, total, customers, transitions, started_at, updated_at, finished_at) "
    "SELECT CAST(:version AS int), NULL, (SELECT count(*) FROM engine.customers), 0, 0, "
    "CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(NULL AS timestamptz) "
    f"ON CONFLICT (version) DO NOTHING RETURNING {_COLUMNS}"
)

# A plain range on the primary key, so every chunk is an index range scan ('' sorts first).
_NEXT_KEYS = text(
    "SELECT customer_key FROM engine.customers WHERE customer_key > CAST(:after AS text) "
    "ORDER BY customer_key LIMIT :limit"
)

_ADVANCE = text(
    "UPDATE engine.lifecycle_passes SET cursor = :cursor, customers = customers + :customers, "
    "transitions = transitions + :transitions, updated_at = CAST(:now AS timestamptz) "
    f"WHERE version = :version RETURNING {_COLUMNS}"
)

_FINISH = text(
    "UPDATE engine.lifecycle_passes SET finished_at = CAST(:now AS timestamptz), "
    f"updated_at = CAST(:now AS timestamptz) WHERE version = :version RETURNING {_COLUMNS}"
)

_RECENT = text(f"SELECT {_COLUMNS} FROM engine.lifecycle_passes ORDER BY version DESC LIMIT :limit")


@dataclass(frozen=True)
class LifecyclePass:
    version: int
    #: the last customer key done (customers are walked in key order); None before the first
    cursor: str | None
    #: customers stored when the pass started (an estimate of its work)
    total: int
    customers: int
    transitions: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def pending(self) -> int:
        """About how many customers are left (0 once finished)."""
        return 0 if self.finished_at is not None else max(self.total - self.customers, 0)


def _pass(row: Any) -> LifecyclePass:
    return LifecyclePass(*row)


async def claim(
    session: AsyncSession, version: int, *, now: datetime
) -> tuple[LifecyclePass | None, bool]:
    """Lock ``version``'s unfinished pass, creating it if there is none yet.

    Returns ``(None, False)`` when it is finished or another transaction holds it (another
    instance is working it: never wait for it), else the pass and whether it was created.
    """
    row = (await session.execute(_LOCK_UNFINISHED, {"version": version})).first()
    if row is not None:
        return _pass(row), False
    if (await session.execute(_EXISTS, {"version": version})).first() is not None:
        return None, False
    row = (await session.execute(_CREATE, {"version": version, "now": now})).first()
    return (_pass(row), True) if row is not None else (None, False)


async def next_keys(session: AsyncSession, *, after: str | None, limit: int) -> list[str]:
    """The next ``limit`` customer keys after ``after``, in key order (not locked)."""
    rows = await session.execute(_NEXT_KEYS, {"after": after or "", "limit": limit})
    return [key for (key,) in rows]


async def advance(
    session: AsyncSession,
    version: int,
    *,
    cursor: str,
    customers: int,
    transitions: int,
    now: datetime,
) -> LifecyclePass:
    """Record a chunk done: everything up to ``cursor``."""
    params = {
        "version": version,
        "cursor": cursor,
        "customers": customers,
        "transitions": transitions,
        "now": now,
    }
    return _pass((await session.execute(_ADVANCE, params)).one())


async def finish(session: AsyncSession, version: int, *, now: datetime) -> LifecyclePass:
    return _pass((await session.execute(_FINISH, {"version": version, "now": now})).one())


async def recent(session: AsyncSession, *, limit: int = 10) -> list[LifecyclePass]:
    """The newest passes first."""
    return [_pass(row) for row in await session.execute(_RECENT, {"limit": limit})]
