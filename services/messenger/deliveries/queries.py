"""Reading deliveries (with their attempts) and replaying them. The caller owns the
transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries.models import Delivery, DeliveryAttempt
from services.messenger.deliveries.status import REPLAYABLE, Status


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    status: str | None = None
    customer_key: str | None = None
    destination_id: str | None = None
    action_id: str | None = None


async def page(
    session: AsyncSession,
    flt: DeliveryFilter,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """Newest first, with every attempt (oldest first)."""
    query = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id.desc())
    if flt.status is not None:
        query = query.where(Delivery.status == flt.status)
    if flt.customer_key is not None:
        query = query.where(Delivery.customer_key == flt.customer_key)
    if flt.destination_id is not None:
        query = query.where(Delivery.destination_id == flt.destination_id)
    if flt.action_id is not None:
        query = query.where(Delivery.action_id == flt.action_id)
    if before is not None:
        query = query.where(tuple_(Delivery.created_at, Delivery.id) < before)
    rows = list(await session.scalars(query.limit(limit)))
    return await _with_attempts(session, rows)


async def get(
    session: AsyncSession, delivery_id: uuid.UUID
) -> tuple[Delivery, list[DeliveryAttempt]] | None:
    row = await session.get(Delivery, delivery_id)
    if row is None:
        return None
    return (await _with_attempts(session, [row]))[0]


async def _with_attempts(
    session: AsyncSession, rows: list[Delivery]
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    if not rows:
        return []
    attempts: dict[uuid.UUID, list[DeliveryAttempt]] = defaultdict(list)
    found = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number, DeliveryAttempt.id)
    )
    for attempt in found:
        attempts[attempt.delivery_id].append(attempt)
    return [(r, attempts[r.id]) for r in rows]


def _replay_values(now: datetime) -> dict[str, Any]:
    """Back to pending, due now, in a new round of the retry schedule. A delivery routed by
    its channel's default is routed again (the default may have changed). ``replayed_at``:
    a run cancellation received before now no longer applies to it (a replay of a
    cancelled delivery is an explicit override)."""
    return {
        "status": Status.PENDING.value,
        "replayed_at": now,
        "round": Delivery.round + 1,
        "round_attempts": 0,
        "next_attempt_at": now,
        "claim_token": None,
        "claimed_until": None,
        "destination_id": case((Delivery.destination_named, Delivery.destination_id), else_=None),
        "updated_at": now,
    }


_REPLAYABLE = [s.value for s in REPLAYABLE]


def _not_erased() -> Any:
    """An erased delivery has nothing left to send (its payload is gone: JSON ``null``, which
    ``IS NOT NULL`` does not catch, hence ``erased_at``)."""
    return Delivery.erased_at.is_(None) & Delivery.payload.is_not(None)


def _not_in_flight(now: datetime) -> Any:
    """An attempt in flight is left to finish (its outcome would be overwritten)."""
    return Delivery.claimed_until.is_(None) | (Delivery.claimed_until < now)


async def replay_one(session: AsyncSession, delivery_id: uuid.UUID, *, now: datetime) -> bool:
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status.in_(_REPLAYABLE),
            _not_erased(),
            _not_in_flight(now),
        )
        .values(**_replay_values(now))
        .returning(Delivery.id)
    )
    return result.first() is not None


async def replay_matching(
    session: AsyncSession,
    *,
    statuses: list[str],
    destination_id: str | None,
    customer_key: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    now: datetime,
) -> int:
    """Replay up to ``limit`` deliveries matching every condition, oldest first."""
    wanted = [s for s in statuses if s in _REPLAYABLE]
    ids = (
        select(Delivery.id)
        .where(Delivery.status.in_(wanted), _not_erased(), _not_in_flight(now))
        .order_by(Delivery.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if destination_id is not None:
        ids = ids.where(Delivery.destination_id == destination_id)
    if customer_key is not None:
        ids = ids.where(Delivery.customer_key == customer_key)
    if created_from is not None:
        ids = ids.where(Delivery.created_at >= created_from)
    if created_to is not None:
        ids = ids.where(Delivery.created_at < created_to)
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids.scalar_subquery()))
        .values(**_replay_values(now))
        .returning(Delivery.id)
    )
    return len(result.all())
