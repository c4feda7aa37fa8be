"""Lifecycle passes (``engine.lifecycle_passes``): one row per lifecycle model version whose
customers are being, or were, re-evaluated. The partition owners walk their partitions and
keep the counters (``engine.checkpoint``); this reads them. Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_COLUMNS: Final = (
    "version, cursor, total, customers, transitions, started_at, updated_at, finished_at"
)

_EXISTS = text("SELECT 1 FROM engine.lifecycle_passes WHERE version = :version")

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


async def recent(session: AsyncSession, *, limit: int = 10) -> list[LifecyclePass]:
    """The newest passes first."""
    return [_pass(row) for row in await session.execute(_RECENT, {"limit": limit})]
