"""Configuration stored as immutable, numbered versions: the newest is current.

The lifecycle model (``engine.lifecycle_versions``) and the send policy
(``engine.send_policy_versions``) have the same shape: a table of ``(version, <document>,
created_at)``, a ``PUT`` that validates the whole document and stores it as the next
version (a 422 naming every problem with its location), and readers that take the newest,
or the default when none is stored or the stored one no longer validates. This is that
shape once; each concern declares its table and document type and keeps its own routes.
Callers own the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine import revision
from shared.errors import Unprocessable

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class VersionedConfig(Generic[M]):
    """One versioned document: ``table`` holds it in ``column``, validated as ``schema``."""

    #: what the document is called in logs, e.g. "lifecycle model"
    label: str
    #: the error location of a problem with the document as a whole, e.g. "lifecycle"
    root: str
    table: Table
    column: str
    schema: type[M]
    default: Callable[[], M]

    def parse(self, body: dict[str, Any]) -> M:
        """``body`` (a ``version`` in it is ignored) as the document, or a 422 listing every
        problem with its dotted location."""
        payload = {k: v for k, v in body.items() if k != "version"}
        try:
            return self.schema.model_validate(payload)
        except ValidationError as exc:
            details = [
                {
                    "loc": ".".join(str(p) for p in e["loc"]) or self.root,
                    "message": str(e["msg"]).removeprefix("Value error, "),
                }
                for e in exc.errors(include_url=False)
            ]
            raise Unprocessable(
                "; ".join(f"{d['loc']}: {d['message']}" for d in details), details=details
            ) from None

    async def latest_version(self, session: AsyncSession) -> int:
        """The newest stored version number; 0 when none was stored."""
        latest = await session.scalar(select(func.max(self.table.c.version)))
        return int(latest or 0)

    async def current(self, session: AsyncSession) -> tuple[int, M]:
        """The newest stored document and its version; ``(0, default)`` when none was stored.

        A stored document that no longer validates (e.g. after an upgrade tightened the
        schema) is logged and replaced by the default: never stop the engine over it.
        """
        row = (
            await session.execute(
                select(self.table.c.version, self.table.c[self.column])
                .order_by(self.table.c.version.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return 0, self.default()
        version, document = row
        try:
            return version, self.schema.model_validate(document)
        except ValidationError as exc:
            log.error(
                f"stored {self.label} no longer valid; using the default",
                extra={"error": str(exc), "version": version},
            )
            return version, self.default()

    async def stored_at(self, session: AsyncSession, version: int) -> datetime | None:
        """When ``version`` was stored (None for version 0, the default)."""
        at: datetime | None = await session.scalar(
            select(self.table.c.created_at).where(self.table.c.version == version)
        )
        return at

    async def store(self, session: AsyncSession, value: M, *, now: datetime) -> int:
        """Store ``value`` as the next version (serialized by a transaction-scoped lock)."""
        lock = f"{self.table.schema}.{self.root}"
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), {"lock": lock})
        version = await self.latest_version(session) + 1
        await session.execute(
            insert(self.table).values(
                {
                    "version": version,
                    self.column: value.model_dump(mode="json"),
                    "created_at": now,
                }
            )
        )
        await revision.bump(session)
        return version
