"""Timers wait for the events still in the log: a due reminder never beats the unread order.

The engine is stopped after the carts are filled (a crash, a deploy, a consumer far behind),
the buyer's order reaches ``clm.events`` while nobody consumes it, and the reminders fall
due meanwhile. When the engine comes back, its timers may fire only once the order has been
consumed: the abandoner gets the reminder, the buyer does not.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    event,
    eventually,
    now,
    produce,
    rule,
    rule_stats,
    seconds,
)

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25}
#: Long enough that the engine is stopped before the reminders fall due, however slow this
#: machine (the test checks it), short enough to wait out.
WAIT = seconds(8)


async def _waiting(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["timers"] else None


async def test_a_due_reminder_waits_for_the_order_still_unconsumed_after_a_restart(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    steps = [{"wait": "PT8S"}, {"send": {"channel": "email", "template": "cart"}}]
    await rules.create(rule(prefix, "cart", steps=steps))
    abandoner, buyer = f"{prefix}-abandoner", f"{prefix}-buyer"
    t0 = now()
    await produce(
        producer,
        event(abandoner, "Product Added", at=t0, properties=MUG),
        event(buyer, "Product Added", at=t0, properties=MUG),
    )
    for customer in (abandoner, buyer):
        await eventually(lambda c=customer: _waiting(engine, c), what=f"{customer}'s wait")

    await engine.stop()
    due = t0 + WAIT
    assert now() < due, "the engine stopped after the reminders were due: the test proves nothing"
    # The buyer orders before the reminder is due; the order waits in the log, unconsumed.
    await produce(
        producer,
        event(buyer, "Order Completed", at=t0 + seconds(1), properties={"order_id": "o-1"}),
    )
    # The engine stays down past the due time (the situation under test, not a wait for
    # something to happen): when it is back, both timers are due at once.
    await asyncio.sleep(max(0.0, (due - now()).total_seconds()) + 0.5)

    await engine.start()

    found = await actions(infra, prefix, count=1, settle=2.0, timeout=60)
    assert [a.customer_key for a in found] == [abandoner]
    assert found[0].created_at == due
    bought = await eventually(lambda: engine.customer_with_orders(buyer, 1), what="the order")
    assert [t for t in bought["timers"] if t["kind"] == "step"] == []
    stats = await rule_stats(engine, f"{prefix}-cart", lambda s: s["sent"] > 0)
    assert (stats["entered"], stats["sent"], stats["exited"]) == (2, 1, 1)
    async with engine.admin() as client:
        timeline = (await client.get(f"/v1/customers/{buyer}/timeline")).json()
    [exited] = [
        i for i in timeline["items"] if i["type"] == "run" and i["data"]["kind"] == "exited"
    ]
    assert (exited["data"]["reason"], exited["data"]["step"]) == ("exit_when", 0)
    assert datetime.fromisoformat(exited["at"]) == t0 + seconds(1)


async def test_a_reminder_already_due_on_arrival_waits_for_the_rest_of_the_late_burst(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    steps = [{"wait": "PT8S"}, {"send": {"channel": "email", "template": "cart"}}]
    await rules.create(rule(prefix, "cart", steps=steps))
    shopper = f"{prefix}-offline"
    # A phone offline for an hour sends what it queued: the add (its reminder is due at
    # once) now, the order it placed a moment after the add in the next request.
    t0 = now() - seconds(3600)
    added = event(shopper, "Product Added", at=t0, properties=MUG)
    await produce(producer, added)
    waiting = await eventually(lambda: _waiting(engine, shopper), what="the late add's wait")
    [timer] = [t for t in waiting["timers"] if t["kind"] == "step"]
    assert datetime.fromisoformat(timer["due_at"]) == t0 + WAIT
    grace = engine_grace(engine)
    assert datetime.fromisoformat(timer["release_at"]) == added.received_at + grace

    await produce(
        producer,
        event(shopper, "Order Completed", at=t0 + seconds(2), properties={"order_id": "o-1"}),
    )
    bought = await eventually(lambda: engine.customer_with_orders(shopper, 1), what="the order")
    assert [t for t in bought["timers"] if t["kind"] == "step"] == []
    assert await actions(infra, prefix, count=0, settle=1.0) == []


def engine_grace(engine: Engine) -> timedelta:
    assert engine.service is not None
    grace: timedelta = engine.service.app.state.engine.settings.late_timer_grace
    assert grace >= seconds(10), "the order must surely be folded within the grace"
    return grace
