"""Outbox rows: written in the state's transaction, read and marked by the relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.effects import EmitAction
from shared.envelope import ErasureV1

_INSERT = text(
    "INSERT INTO engine.outbox (id, customer_key, kind, payload, created_at) "
    "SELECT i, k, kd, CAST(p AS jsonb), c FROM unnest(CAST(:ids AS text[]), "
    "CAST(:keys AS text[]), CAST(:kinds AS text[]), CAST(:payloads AS text[]), "
    "CAST(:created AS timestamptz[])) AS x(i, k, kd, p, c) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)

_CLAIM = text(
    "SELECT seq, customer_key, kind, payload::text FROM engine.outbox "
    "WHERE published_at IS NULL ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED"
)

_MARK = text(
    "UPDATE engine.outbox SET published_at = CAST(:now AS timestamptz) "
    "WHERE seq = ANY(CAST(:seqs AS bigint[]))"
)


@dataclass(frozen=True)
class Pending:
    seq: int
    customer_key: str
    kind: str
    payload: str


async def add_actions(session: AsyncSession, actions: Sequence[EmitAction]) -> set[str]:
    """Add the actions not already there; return the ids added (a replay adds none)."""
    if not actions:
        return set()
    rows = await session.execute(
        _INSERT,
        {
            "ids": [a.action_id for a in actions],
            "keys": [a.customer_key for a in actions],
            "kinds": ["action"] * len(actions),
            "payloads": [a.to_action().to_bytes().decode() for a in actions],
            "created": [a.created_at for a in actions],
        },
    )
    return {action_id for (action_id,) in rows}


async def add_erasure(session: AsyncSession, erasure: ErasureV1) -> None:
    await session.execute(
        _INSERT,
        {
            "ids": [f"erasure_{erasure.erasure_id}"],
            "keys": [erasure.customer_key],
            "kinds": ["erasure"],
            "payloads": [erasure.to_bytes().decode()],
            "created": [erasure.requested_at],
        },
    )


async def claim(session: AsyncSession, *, limit: int) -> list[Pending]:
    """Lock up to ``limit`` unpublished rows, oldest first, skipping other relays' rows."""
    rows = await session.execute(_CLAIM, {"limit": limit})
    return [Pending(seq, key, kind, payload) for seq, key, kind, payload in rows]


async def mark_published(session: AsyncSession, seqs: Sequence[int], *, now: datetime) -> None:
    await session.execute(_MARK, {"seqs": list(seqs), "now": now})


async def backlog(session: AsyncSession) -> int:
    value = await session.scalar(
        text("SELECT count(*) FROM engine.outbox WHERE published_at IS NULL")
    )
    return int(value or 0)
