"""Pending retries live in PostgreSQL: a restart loses none and sends none twice, and a claim
whose worker died is picked up again after its lease."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries import claims
from services.messenger.deliveries.intake import insert_actions
from services.messenger.deliveries.models import Delivery
from services.messenger.deliveries.status import AttemptOutcome, NextState, Status
from shared.db import create_engine
from shared.ids import derive_id
from tests.messenger.messenger_support import (
    MessengerFactory,
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver
from tests.support.services import Infra


async def test_a_restart_in_the_middle_of_the_retry_schedule_delivers_exactly_once(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    # The retry is due a minute after the 503, so the first messenger cannot send it however
    # long its shutdown takes; once it is down the retry is made due at once.
    slow_schedule = [0, 60, 120]
    first = await start_messenger(retry_schedule=slow_schedule, retry_jitter=0)
    hook = receiver.hook(503, 200)
    dest = await create_destination(first, hook)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    retrying = await wait_delivery(first, action.action_id, "retrying")
    assert retrying["attempt_count"] == 1
    await first.stop()
    assert [h.status for h in hook.for_action(action.action_id)] == [503]
    await _make_due_now(infra, derive_id("delivery", action.action_id))

    second = await start_messenger(retry_schedule=slow_schedule, retry_jitter=0)
    delivered = await wait_delivery(second, action.action_id, "delivered")

    hits = hook.for_action(action.action_id)
    assert [h.status for h in hits] == [503, 200]
    assert {h.webhook_id for h in hits} == {action.action_id}
    assert delivered["attempt_count"] == 2
    assert delivered["next_attempt_at"] is None  # nothing left scheduled: no second send


async def _make_due_now(infra: Infra, delivery_id: uuid.UUID) -> None:
    """Move a pending retry (still scheduled far ahead) to now."""
    engine = create_engine(infra.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            now = datetime.now(UTC)
            result = await conn.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == "retrying",
                    Delivery.next_attempt_at > now + timedelta(seconds=30),
                )
                .values(next_attempt_at=now)
            )
            assert result.rowcount == 1, "the retry is not pending a minute ahead"
    finally:
        await engine.dispose()


async def test_a_claim_whose_worker_died_is_claimed_again_after_its_lease(
    session: AsyncSession,
) -> None:
    t0 = datetime.now(UTC)
    lease = timedelta(seconds=120)
    action = make_action(customer_id())
    await insert_actions(session, [action], now=t0, first_delay=timedelta(0))
    delivery_id = derive_id("delivery", action.action_id)
    # Due long ago, so it comes first whatever else is due in the shared database.
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
    )

    async def claim(now: datetime) -> list[claims.ClaimedDelivery]:
        return await claims.claim_due(
            session,
            now=now,
            lease_until=now + lease,
            token=uuid.uuid4(),
            caps={},
            default_cap=1,
            limit=1,
        )

    (dead_worker,) = await claim(t0)
    assert dead_worker.id == delivery_id
    assert delivery_id not in [c.id for c in await claim(t0 + timedelta(seconds=60))]
    (successor,) = await claim(t0 + lease + timedelta(seconds=1))
    assert successor.id == delivery_id and successor.claim_token != dead_worker.claim_token

    # The worker that lost its claim cannot overwrite what its successor records.
    done = NextState(Status.DELIVERED, AttemptOutcome.DELIVERED, None, t0, None)
    kwargs = {
        "destination_id": "dst_x",
        "started_at": t0,
        "latency_ms": 1.0,
        "status_code": 200,
        "error": None,
        "response_body": "ok",
        "now": t0,
    }
    recorded = await claims.record_attempt(session, successor, done, **kwargs)  # type: ignore[arg-type]
    assert recorded == claims.Recorded(Status.DELIVERED)
    assert await claims.record_attempt(session, dead_worker, done, **kwargs) is None  # type: ignore[arg-type]
    row = await session.get(Delivery, delivery_id)
    assert row is not None
    assert (row.status, row.attempt_count, row.claim_token) == ("delivered", 1, None)


async def test_the_same_action_twice_is_one_delivery(session: AsyncSession) -> None:
    action = make_action(customer_id())
    now = datetime.now(UTC)
    assert await insert_actions(session, [action, action], now=now, first_delay=timedelta(0)) == 1
    assert await insert_actions(session, [action], now=now, first_delay=timedelta(0)) == 0
