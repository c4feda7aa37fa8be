"""A run that ends early after a send tells the messenger: one ``ActionCancelV1`` on
clm.actions, through the outbox, with an id derived from the run, so a crash that replays the
purchase sends the very same record again and stores it once."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.trigger_engine.core import derive
from services.trigger_engine.stream.handoff import partition_of
from services.trigger_engine.stream.store import asyncpg_url
from shared import topics
from shared.envelope import ActionCancelV1, decode_action_topic
from tests.support.kafka import collect
from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    event,
    eventually,
    produce,
    rule,
    rule_stats,
)

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25}


async def _cancels(infra: Infra, key: str, *, count: int) -> list[ActionCancelV1]:
    found = await collect(
        infra.bootstrap,
        topics.ACTIONS,
        decode=decode_action_topic,
        match=lambda r: isinstance(r, ActionCancelV1) and r.customer_key == key,
        count=count,
        settle=2.0,
    )
    return [c for c in found if isinstance(c, ActionCancelV1)]


async def _run(engine: Engine, key: str, status: str) -> dict[str, Any] | None:
    customer = await engine.customer(key)
    if customer is None:
        return None
    return next((r for r in customer["runs"] if r["status"] == status), None)


async def test_a_purchase_after_a_send_cancels_the_run_once_and_a_replay_repeats_its_id(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(
            prefix,
            "cart",
            steps=[
                {"send": {"channel": "email", "template": "first"}},
                {"wait": "PT60S"},  # outlives the test: the purchase always comes first
                {"send": {"channel": "email", "template": "second"}},
            ],
            goal={"event": "Order Completed", "within": "P7D"},
        )
    )
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    [sent] = await actions(infra, prefix, count=1)
    assert sent.run_id is not None
    await eventually(lambda: _run(engine, shopper, "active"), what="the run to wait")

    # What a checkpoint holds before the purchase: the state and the partition's offsets.
    await engine.stop()
    connection = await asyncpg.connect(asyncpg_url(infra.database_url))
    try:
        partitions = await connection.fetchval(
            "SELECT count(*) FROM engine.partitions WHERE topic = $1", topics.EVENTS
        )
        partition = partition_of(shopper, partitions)
        before = await connection.fetchrow(
            "SELECT c.state, c.next_release_at, p.events_offset, p.handoff_offset "
            "FROM engine.customers c, engine.partitions p "
            "WHERE c.customer_key = $1 AND p.topic = $2 AND p.partition = $3",
            shopper,
            topics.EVENTS,
            partition,
        )
        await engine.start()

        await produce(producer, event(shopper, "Order Completed", properties={"order_id": "o-1"}))
        [cancel] = await _cancels(infra, shopper, count=1)  # and no second one
        assert cancel.cancel_id == derive.cancel_id(sent.run_id)
        assert (cancel.run_id, cancel.rule, cancel.reason) == (
            sent.run_id,
            f"{prefix}-cart",
            "exit_when",
        )
        stats = await rule_stats(engine, f"{prefix}-cart", lambda s: s["exited"] == 1)
        assert (stats["sent"], stats["exited"], stats["converted"]["treated"]) == (1, 1, 1)

        # A crash before the checkpoint after the purchase: the state and the offsets are as
        # before it, and the cancel's outbox row is not marked published.
        await engine.stop()
        await connection.execute(
            "UPDATE engine.customers SET state = $2, next_release_at = $3 WHERE customer_key = $1",
            shopper,
            before["state"],
            before["next_release_at"],
        )
        await connection.execute(
            "UPDATE engine.partitions SET events_offset = $3, handoff_offset = $4 "
            "WHERE topic = $1 AND partition = $2",
            topics.EVENTS,
            partition,
            before["events_offset"],
            before["handoff_offset"],
        )
        await connection.execute(
            "UPDATE engine.outbox SET published_at = NULL WHERE id = $1", cancel.cancel_id
        )
        await engine.start()

        # The purchase is folded again (the run ends again) and the same cancel goes out.
        # (The stored state before the purchase has no order and a run waiting.)
        after = await eventually(
            lambda: engine.customer_with_orders(shopper, 1), what="the replayed purchase"
        )
        assert [r for r in after["runs"] if r["status"] == "active"] == []
        again = await _cancels(infra, shopper, count=2)
        assert {c.cancel_id for c in again} == {cancel.cancel_id}
        assert {c.model_dump_json() for c in again} == {cancel.model_dump_json()}
        rows = await connection.fetch(
            "SELECT id, kind FROM engine.outbox WHERE customer_key = $1 AND kind = 'cancel'",
            shopper,
        )
        assert [tuple(r) for r in rows] == [(cancel.cancel_id, "cancel")]
        exits = await connection.fetchval(
            "SELECT count(*) FROM engine.run_events WHERE run_id = $1 AND kind = 'exited'",
            sent.run_id,
        )
        assert exits == 1
    finally:
        await connection.close()
    # A cancellation is not a timeline item (the run's "exited" record is).
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{shopper}/timeline")
    assert response.status_code == 200, response.text
    kinds = [(i["type"], i["data"].get("kind")) for i in response.json()["items"]]
    assert ("run", "exited") in kinds and ("action", None) in kinds
    assert [k for k in kinds if k[0] in ("action", "erasure")] == [("action", None)]


async def test_a_purchase_after_a_wait_and_send_rule_completed_cancels_its_send_once(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    """The cart-abandon shape (wait, then send) completes at its send; the messenger may still
    be retrying that send when the customer buys, so the purchase cancels the run anyway."""
    await rules.create(rule(prefix, "reminder"))  # wait PT1S, send; exit_when Order Completed
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    [sent] = await actions(infra, prefix, count=1)
    assert sent.run_id is not None
    await rule_stats(engine, f"{prefix}-reminder", lambda s: s["completed"] == 1)

    await produce(producer, event(shopper, "Order Completed", properties={"order_id": "o-1"}))
    [cancel] = await _cancels(infra, shopper, count=1)  # and no second one
    assert cancel.cancel_id == derive.cancel_id(sent.run_id)
    assert (cancel.run_id, cancel.rule, cancel.reason) == (
        sent.run_id,
        f"{prefix}-reminder",
        "exit_when",
    )
    # Another purchase finds nothing left to cancel: still the one record.
    await produce(producer, event(shopper, "Order Completed", properties={"order_id": "o-2"}))
    await eventually(lambda: engine.customer_with_orders(shopper, 2), what="the second order")
    again = await _cancels(infra, shopper, count=1)
    assert [c.cancel_id for c in again] == [cancel.cancel_id]
    stats = await rule_stats(engine, f"{prefix}-reminder")
    assert (stats["sent"], stats["completed"], stats["exited"]) == (1, 1, 0)  # no exit record
