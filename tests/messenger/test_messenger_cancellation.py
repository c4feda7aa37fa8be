"""Run cancellations through Kafka, PostgreSQL and HTTP: an action whose run ended is not sent,
whether it is between retries, not yet received, or in the middle of an attempt; a replay
sends it all the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries import claims, queries
from services.messenger.deliveries.intake import handle_records, insert_actions
from services.messenger.deliveries.models import Delivery
from services.messenger.deliveries.status import Status
from shared.db import create_engine
from shared.envelope import ActionCancelV1, ActionV1
from shared.ids import derive_id
from tests.messenger.messenger_support import (
    MessengerFactory,
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply, eventually
from tests.support.services import Infra, RunningService


def run_action(customer: str, run_id: str, *, destination: str | None = None) -> ActionV1:
    """An action of the run ``run_id`` (as the engine sends it: the action names its run)."""
    action = make_action(customer, destination=destination)
    return action.model_copy(update={"run_id": run_id})


def cancel_of(action: ActionV1, reason: str = "exit_when") -> ActionCancelV1:
    assert action.run_id is not None
    return ActionCancelV1(
        cancel_id=f"cancel_{action.run_id}",
        run_id=action.run_id,
        customer_key=action.customer_key,
        rule="cart-abandon",
        reason=reason,
        ended_at=datetime.now(UTC),
    )


async def execute(infra: Infra, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(infra.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def cancelled_total(service: RunningService, reason: str) -> float:
    async with service.client() as client:
        body = (await client.get("/metrics")).text
    prefix = f'clm_messenger_cancelled_total{{reason="{reason}"}} '
    values = [float(line[len(prefix) :]) for line in body.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


async def test_a_cancel_between_retries_stops_the_next_attempt_and_a_replay_overrides_it(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    # The retry is due a minute after the 503: the cancel always lands between the two.
    messenger = await start_messenger(retry_schedule=[0, 60, 120], retry_jitter=0)
    hook = receiver.hook(503)
    dest = await create_destination(messenger, hook)
    customer = customer_id()
    action = run_action(customer, f"run-{uuid.uuid4().hex}", destination=dest["id"])
    await produce(infra, action)
    retrying = await wait_delivery(messenger, action.action_id, "retrying")
    assert retrying["attempt_count"] == 1 and retrying["next_attempt_at"] is not None
    before = await cancelled_total(messenger, "exit_when")

    await produce(infra, cancel_of(action))

    cancelled = await wait_delivery(messenger, action.action_id, "cancelled")
    assert cancelled["next_attempt_at"] is None
    assert cancelled["last_error"] == "run ended (exit_when) before sending"
    assert [a["outcome"] for a in cancelled["attempts"]] == ["retry"]
    assert await cancelled_total(messenger, "exit_when") == before + 1
    # Even due, it is not claimed: a later action to the same receiver is sent, it is not.
    await execute(
        infra,
        "UPDATE messenger.deliveries SET next_attempt_at = :past WHERE action_id = :id",
        past=datetime.now(UTC) - timedelta(minutes=1),
        id=action.action_id,
    )
    later = make_action(customer, destination=dest["id"])
    await produce(infra, later)
    await wait_delivery(messenger, later.action_id, "delivered")
    assert [h.status for h in hook.for_action(action.action_id)] == [503]
    async with messenger.admin() as client:
        listed = await client.get("/v1/deliveries", params={"status": "cancelled"})
    assert listed.status_code == 200, listed.text
    assert action.action_id in [d["action_id"] for d in listed.json()["items"]]

    # A replay is an explicit override: sent, with the same webhook-id.
    async with messenger.admin() as client:
        replayed = await client.post(f"/v1/deliveries/{cancelled['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    delivered = await wait_delivery(messenger, action.action_id, "delivered")
    assert [h.status for h in hook.for_action(action.action_id)] == [503, 200]
    assert delivered["attempt_count"] == 2


async def test_an_action_that_arrives_after_its_runs_cancel_is_cancelled_at_intake(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    # First attempts wait a minute: only intake can make the delivery cancelled at once.
    messenger = await start_messenger(retry_schedule=[60, 120], retry_jitter=0)
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    customer = customer_id()
    run = f"run-{uuid.uuid4().hex}"
    first = run_action(customer, run, destination=dest["id"])
    # The cancel overtook the run's action (a replay, a restart, another partition).
    await produce(infra, cancel_of(first, "audience"), first)

    cancelled = await wait_delivery(messenger, first.action_id, "cancelled")
    assert cancelled["last_error"] == "run ended (audience) before sending"
    assert cancelled["attempts"] == [] and cancelled["next_attempt_at"] is None
    # The same cancel again changes nothing; another run of the customer is not cancelled.
    other = run_action(customer, f"run-{uuid.uuid4().hex}", destination=dest["id"])
    await produce(infra, cancel_of(first, "audience"), other)
    pending = await wait_delivery(messenger, other.action_id, "pending")
    assert pending["next_attempt_at"] is not None
    assert hook.for_action(first.action_id) == []
    (again,) = await execute(
        infra, "SELECT count(*) FROM messenger.cancelled_runs WHERE run_id = :run", run=run
    )
    assert again == (1,)


async def test_a_cancel_during_an_attempt_does_not_recall_it_but_stops_its_retry(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    # The receiver holds the attempt long enough for the cancel to be consumed meanwhile; the
    # retry would be a minute later: the attempt's own record must see the cancel.
    messenger = await start_messenger(retry_schedule=[0, 60, 120], retry_jitter=0)
    hook = receiver.hook(Reply(503, delay=6))
    dest = await create_destination(messenger, hook)
    action = run_action(customer_id(), f"run-{uuid.uuid4().hex}", destination=dest["id"])
    await produce(infra, action)

    async def in_flight() -> bool:
        return bool(hook.for_action(action.action_id))

    await eventually(in_flight)
    await produce(infra, cancel_of(action, "merged"))

    async def received() -> bool:
        rows = await execute(
            infra,
            "SELECT d.status, d.attempt_count FROM messenger.cancelled_runs c "
            "JOIN messenger.deliveries d ON d.run_id = c.run_id WHERE c.run_id = :run",
            run=action.run_id,
        )
        return bool(rows)

    await eventually(received)
    async with messenger.admin() as client:
        response = await client.get("/v1/deliveries", params={"action_id": action.action_id})
    (during,) = response.json()["items"]
    assert (during["status"], during["attempt_count"]) == ("pending", 0), "not in flight"

    cancelled = await wait_delivery(messenger, action.action_id, "cancelled")
    assert [(a["status_code"], a["outcome"]) for a in cancelled["attempts"]] == [(503, "retry")]
    assert cancelled["last_error"] == "run ended (merged) before sending"
    assert cancelled["next_attempt_at"] is None
    assert len(hook.for_action(action.action_id)) == 1


async def _claim(session: AsyncSession, now: datetime) -> list[claims.ClaimedDelivery]:
    return await claims.claim_due(
        session,
        now=now,
        lease_until=now + timedelta(seconds=120),
        token=uuid.uuid4(),
        caps={},
        default_cap=1,
        limit=1,
    )


async def test_a_claim_checks_the_run_and_a_replay_after_the_cancel_lifts_it(
    session: AsyncSession,
) -> None:
    t0 = datetime.now(UTC)
    action = run_action(customer_id(), f"run-{uuid.uuid4().hex}")
    await insert_actions(session, [action], now=t0, first_delay=timedelta(0))
    delivery_id = derive_id("delivery", action.action_id)
    # Due long ago, so it comes first whatever else is due in the shared database.
    due_long_ago = update(Delivery).where(Delivery.id == delivery_id)
    await session.execute(due_long_ago.values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC)))
    # A cancel whose transaction did not see the row (another partition, at the same time):
    # the run is cancelled but the delivery is still pending. The claim finds it out.
    await session.execute(
        text(
            "INSERT INTO messenger.cancelled_runs VALUES (:run, 'cancel_x', :key, 'r', "
            "'rule_disabled', :at, :at)"
        ),
        {"run": action.run_id, "key": action.customer_key, "at": t0},
    )
    (claimed,) = await _claim(session, t0)
    assert (claimed.id, claimed.run_ended) == (delivery_id, "rule_disabled")
    await claims.release(session, [claimed])

    # A replay after the cancel: the cancel no longer applies to it.
    await session.execute(due_long_ago.values(status="failed"))
    assert await queries.replay_one(session, delivery_id, now=t0 + timedelta(seconds=1))
    await session.execute(due_long_ago.values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC)))
    (replayed,) = await _claim(session, t0 + timedelta(seconds=2))
    assert (replayed.id, replayed.run_ended) == (delivery_id, None)


async def test_a_batch_applies_actions_and_cancels_in_their_order(session: AsyncSession) -> None:
    now = datetime.now(UTC)
    customer = customer_id()
    run, other_run = f"run-{uuid.uuid4().hex}", f"run-{uuid.uuid4().hex}"
    sent, late = run_action(customer, run), run_action(customer, run)
    unrelated = run_action(customer, other_run)
    done = await handle_records(
        session,
        [sent, unrelated, cancel_of(sent), cancel_of(sent), late],
        now=now,
        first_delay=timedelta(0),
    )
    assert (done.created, dict(done.cancelled)) == (3, {"exit_when": 2})
    statuses = {
        action_id: status
        for action_id, status in await session.execute(
            text("SELECT action_id, status FROM messenger.deliveries WHERE customer_key = :key"),
            {"key": customer},
        )
    }
    assert statuses == {
        sent.action_id: Status.CANCELLED.value,
        late.action_id: Status.CANCELLED.value,
        unrelated.action_id: Status.PENDING.value,
    }
    # Received again (a replay of the topic), nothing changes.
    again = await handle_records(
        session, [sent, cancel_of(sent), late], now=now, first_delay=timedelta(0)
    )
    assert (again.created, dict(again.cancelled)) == (0, {})
