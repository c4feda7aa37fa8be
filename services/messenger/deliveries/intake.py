"""Actions in, deliveries out: one row per action (``ON CONFLICT (action_id) DO NOTHING``);
erasures purge what is stored for a customer. The caller owns the transaction (one per
consumed batch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries.models import Delivery, DeliveryAttempt
from services.messenger.deliveries.status import ACTIVE, Status
from services.messenger.destinations.repository import defaults_by_channel
from shared.envelope import ActionV1, ErasureV1
from shared.ids import derive_id


def delivery_row(
    action: ActionV1, *, default_destination: str | None, now: datetime, first_delay: timedelta
) -> dict[str, Any]:
    """The new delivery row of an action (pure)."""
    data = action.data
    rule, template = data.get("rule"), data.get("template")
    return {
        "id": derive_id("delivery", action.action_id),
        "action_id": action.action_id,
        "customer_key": action.customer_key,
        "channel": action.channel,
        "destination_id": action.destination or default_destination,
        "destination_named": action.destination is not None,
        "rule": rule if isinstance(rule, str) else None,
        "template": template if isinstance(template, str) else None,
        "payload": data,
        "action_created_at": action.created_at,
        "status": Status.PENDING.value,
        "attempt_count": 0,
        "round": 1,
        "round_attempts": 0,
        "next_attempt_at": now + first_delay,
        "created_at": now,
        "updated_at": now,
    }


async def insert_actions(
    session: AsyncSession,
    actions: Sequence[ActionV1],
    *,
    now: datetime,
    first_delay: timedelta,
) -> int:
    """Insert one delivery per new action; returns how many were new."""
    if not actions:
        return 0
    defaults = await defaults_by_channel(session)
    unique = {a.action_id: a for a in actions}
    rows = [
        delivery_row(
            a, default_destination=defaults.get(a.channel), now=now, first_delay=first_delay
        )
        for a in unique.values()
    ]
    result = await session.execute(
        insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["action_id"])
        .returning(Delivery.id)
    )
    return len(result.all())


async def erase_customer(session: AsyncSession, customer_key: str, *, now: datetime) -> int:
    """Purge the stored payloads and the attempts' response bodies of ``customer_key``.

    Deliveries not yet sent are cancelled (there is nothing left to send). Rows and the
    attempt log stay (statuses, times, codes), without personal data. Returns the number of
    deliveries purged.
    """
    active = Delivery.status.in_([s.value for s in ACTIVE])
    result = await session.execute(
        update(Delivery)
        .where(Delivery.customer_key == customer_key)
        .values(
            payload=None,
            erased_at=now,
            updated_at=now,
            status=case((active, Status.CANCELLED.value), else_=Delivery.status),
            last_error=case((active, "customer erased before sending"), else_=Delivery.last_error),
            next_attempt_at=case((active, None), else_=Delivery.next_attempt_at),
            claim_token=None,
            claimed_until=None,
        )
        .returning(Delivery.id)
    )
    ids = [row[0] for row in result.all()]
    if ids:
        await session.execute(
            update(DeliveryAttempt)
            .where(
                DeliveryAttempt.delivery_id.in_(
                    select(Delivery.id).where(Delivery.customer_key == customer_key)
                ),
                DeliveryAttempt.response_body.is_not(None),
            )
            .values(response_body=None)
        )
    return len(ids)


async def handle_records(
    session: AsyncSession,
    records: Sequence[ActionV1 | ErasureV1],
    *,
    now: datetime,
    first_delay: timedelta,
) -> tuple[int, int]:
    """Apply one consumed batch in order (an erasure also covers the actions before it).
    Returns (new deliveries, deliveries purged)."""
    created = purged = 0
    pending: list[ActionV1] = []
    for record in records:
        if isinstance(record, ActionV1):
            pending.append(record)
            continue
        created += await insert_actions(session, pending, now=now, first_delay=first_delay)
        pending = []
        purged += await erase_customer(session, record.customer_key, now=now)
    created += await insert_actions(session, pending, now=now, first_delay=first_delay)
    return created, purged
