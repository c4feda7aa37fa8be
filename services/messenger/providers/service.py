"""Apply provider events: update the delivery's provider status, add suppressions. The
caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries.models import Delivery
from services.messenger.destinations.models import Destination
from services.messenger.providers.schemas import ProviderEvent, RejectedEvent
from services.messenger.suppressions import repository as suppressions
from services.messenger.suppressions.rules import (
    address_of,
    merge_provider_status,
    suppressions_for_event,
)


async def apply_events(
    session: AsyncSession,
    destination: Destination,
    events: Sequence[ProviderEvent],
    *,
    now: datetime,
) -> tuple[int, list[RejectedEvent]]:
    action_ids = {e.action_id for e in events if e.action_id}
    deliveries: dict[str, Delivery] = {}
    if action_ids:
        rows = await session.scalars(
            select(Delivery).where(Delivery.action_id.in_(action_ids)).with_for_update()
        )
        deliveries = {d.action_id: d for d in rows}
    accepted = 0
    rejected: list[RejectedEvent] = []
    for index, event in enumerate(events):
        if event.action_id:
            delivery = deliveries.get(event.action_id)
            if delivery is None or delivery.destination_id != destination.id:
                rejected.append(
                    RejectedEvent(
                        index=index,
                        code="unknown_action",
                        message="no delivery with this action_id went to this destination",
                    )
                )
                continue
            channel = delivery.channel
            customer: str | None = delivery.customer_key
            address = event.address or address_of(channel, delivery.payload)
            delivery.provider_status = merge_provider_status(delivery.provider_status, event.type)
            delivery.provider_status_at = event.occurred_at or now
            delivery.updated_at = now
        else:
            if not event.customer_id and not event.address:
                rejected.append(
                    RejectedEvent(
                        index=index,
                        code="missing_subject",
                        message="give action_id, or customer_id and/or address",
                    )
                )
                continue
            channel = event.channel or destination.channel
            customer, address = event.customer_id, event.address
        for subject in suppressions_for_event(event.type, channel, customer, address):
            await suppressions.add(
                session,
                subject,
                reason=event.type.value,
                source="provider",
                destination_id=destination.id,
                note=event.detail,
                now=now,
            )
        accepted += 1
    await session.flush()
    return accepted, rejected
