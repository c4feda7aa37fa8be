"""Write keys in PostgreSQL, and a short-lived cache of lookups for the hot path."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.models import WriteKey
from services.ingest.writekeys.keys import generate_key, hash_key, key_prefix


@dataclass(frozen=True)
class CreatedKey:
    id: uuid.UUID
    source: str
    key: str
    key_prefix: str
    created_at: datetime


async def create(session: AsyncSession, source: str) -> CreatedKey:
    key = generate_key()
    row = WriteKey(
        id=uuid.uuid4(),
        source=source,
        key_hash=hash_key(key),
        key_prefix=key_prefix(key),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return CreatedKey(row.id, source, key, row.key_prefix, row.created_at)


async def list_active(session: AsyncSession) -> list[WriteKey]:
    result = await session.scalars(
        select(WriteKey).where(WriteKey.revoked_at.is_(None)).order_by(WriteKey.created_at)
    )
    return list(result)


async def revoke(session: AsyncSession, key_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(WriteKey)
        .where(WriteKey.id == key_id, WriteKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(WriteKey.id)
    )
    return result.first() is not None


class WriteKeyResolver:
    """Maps a presented key to its source. Lookups are cached for ``ttl`` seconds so that
    every request does not cost a query; a revoke in this process clears the cache at once,
    other instances honour it within ``ttl``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def source_of(self, key: str) -> str | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        async with self.sessions() as session:
            source = await session.scalar(
                select(WriteKey.source).where(
                    WriteKey.key_hash == digest, WriteKey.revoked_at.is_(None)
                )
            )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, source)
        return source

    def clear(self) -> None:
        self._cache.clear()
