"""Cart abandonment end to end: events on clm.events in, actions on clm.actions out."""

from __future__ import annotations

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

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25, "quantity": 1}
#: The reminder's wait. The buyer's order must be folded inside it, however slow this
#: machine; the abandoner's cart was filled this long ago (less a second), so the test does
#: not wait it out.
WAIT = seconds(30)


async def test_abandoner_gets_exactly_one_reminder_and_buyer_none(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    steps = [{"wait": "PT30S"}, {"send": {"channel": "email", "template": "cart"}}]
    await rules.create(rule(prefix, "cart", steps=steps))
    abandoner, buyer = f"{prefix}-abandoner", f"{prefix}-buyer"
    t0 = now()

    await produce(
        producer,
        event(abandoner, "Product Added", at=t0 - WAIT + seconds(1), properties=MUG),
        event(buyer, "Product Added", at=t0, properties=MUG),
        event(buyer, "Order Completed", properties={"order_id": f"{prefix}-o1", "total": 25}),
    )

    found = await actions(infra, prefix, count=1, settle=1.0)
    assert [a.customer_key for a in found] == [abandoner]
    data = found[0].data
    assert data["rule"] == f"{prefix}-cart"
    assert data["rule_version"] == 1
    assert data["template"] == "cart"
    assert data["action_id"] == found[0].action_id
    assert data["customer"]["id"] == abandoner
    assert [p["product_id"] for p in data["context"]["cart"]["products"]] == ["p-mug"]
    assert data["context"]["trigger"]["event"] == "Product Added"
    assert found[0].created_at == t0 + seconds(1)

    # The buyer's order ended their run inside its wait: the reminder will never go out.
    bought = await eventually(
        lambda: engine.customer_with_orders(buyer, 1), what="the buyer's order"
    )
    assert [r for r in bought["runs"] if r["status"] == "active"] == []
    assert [t for t in bought["timers"] if t["kind"] == "step"] == []
    stats = await rule_stats(engine, f"{prefix}-cart", lambda s: s["sent"] > 0)
    assert (stats["entered"], stats["sent"], stats["exited"]) == (2, 1, 1)
