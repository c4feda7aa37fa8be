"""Actions in, deliveries out: one row per action (``ON CONFLICT (action_id) DO NOTHING``);
run cancellations cancel a run's deliveries not sent yet (``cancels.py``); erasures purge what
is stored for a customer. The caller owns the transaction (one per consumed batch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries import cancels
from services.messenger.deliveries.models import Delivery, DeliveryAttempt
from services.messenger.deliveries.status import ACTIVE, Status, run_ended_error
from services.messenger.destinations.repository import defaults_by_channel
from shared.envelope import ActionCancelV1, ActionV1, ErasureV1
from shared.ids import derive_id

ActionsRecord = ActionV1 | ActionCancelV1 | ErasureV1
"""What ``clm.actions`` carries."""


@dataclass
class Intake:
    """What one consumed batch did."""

    created: int = 0
    """New deliveries (to send, or cancelled at once: their run had ended)."""
    purged: int = 0
    """Deliveries whose customer was erased."""
    cancelled: Counter[str] = field(default_factory=Counter)
    """Deliveries cancelled because their run ended, per end reason."""


def delivery_row(
    action: ActionV1,
    *,
    default_destination: str | None,
    now: datetime,
    first_delay: timedelta,
    run_ended: str | None = None,
) -> dict[str, Any]:
    """The new delivery row of an action (pure); ``run_ended``: the reason its run ended, if
    a cancellation for it came first (the row is then ``cancelled`` at once)."""
    data = action.data
    rule, template = data.get("rule"), data.get("template")
    row: dict[str, Any] = {
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
        "run_id": action.run_id,
        "last_error": None,
    }
    if run_ended is not None:
        row["status"] = Status.CANCELLED.value
        row["next_attempt_at"] = None
        row["last_error"] = run_ended_error(run_ended)
    return row


async def insert_actions(
    session: AsyncSession,
    actions: Sequence[ActionV1],
    *,
    now: datetime,
    first_delay: timedelta,
    cancelled: Counter[str] | None = None,
) -> int:
    """Insert one delivery per new action; returns how many were new. An action of a run
    already cancelled is stored ``cancelled`` (counted per reason into ``cancelled``)."""
    if not actions:
        return 0
    defaults = await defaults_by_channel(session)
    unique = {a.action_id: a for a in actions}
    ended = await cancels.ended_runs(session, (a.run_id for a in unique.values() if a.run_id))
    rows = [
        delivery_row(
            a,
            default_destination=defaults.get(a.channel),
            now=now,
            first_delay=first_delay,
            run_ended=ended.get(a.run_id) if a.run_id else None,
        )
        for a in unique.values()
    ]
    result = await session.execute(
        insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["action_id"])
        .returning(Delivery.run_id, Delivery.status)
    )
    inserted = result.all()
    if cancelled is not None:
        cancelled.update(
            ended[run_id]
            for run_id, status in inserted
            if run_id is not None and status == Status.CANCELLED.value and run_id in ended
        )
    return len(inserted)


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
    records: Sequence[ActionsRecord],
    *,
    now: datetime,
    first_delay: timedelta,
) -> Intake:
    """Apply one consumed batch in order: a cancellation or an erasure also covers the actions
    before it (consecutive actions are inserted together, consecutive cancellations applied
    together)."""
    done = Intake()
    actions: list[ActionV1] = []
    cancelling: list[ActionCancelV1] = []

    async def flush() -> None:
        done.created += await insert_actions(
            session, actions, now=now, first_delay=first_delay, cancelled=done.cancelled
        )
        actions.clear()
        done.cancelled.update(await cancels.cancel_runs(session, cancelling, now=now))
        cancelling.clear()

    for record in records:
        if isinstance(record, ActionV1):
            if cancelling:
                await flush()
            actions.append(record)
        elif isinstance(record, ActionCancelV1):
            if actions:
                await flush()
            cancelling.append(record)
        else:
            await flush()
            done.purged += await erase_customer(session, record.customer_key, now=now)
    await flush()
    return done
