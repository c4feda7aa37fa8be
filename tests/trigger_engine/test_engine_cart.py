"""Cart abandonment end to end: events on clm.events in, actions on clm.actions out."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from tests.support.services import Infra
from tests.trigger_engine.engine_support import Engine, Rules, actions, event, produce, rule

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25, "quantity": 1}


async def test_abandoner_gets_exactly_one_reminder_and_buyer_none(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(rule(prefix, "cart"))
    abandoner, buyer = f"{prefix}-abandoner", f"{prefix}-buyer"

    await produce(
        producer,
        event(abandoner, "Product Added", properties=MUG),
        event(buyer, "Product Added", properties=MUG),
        event(buyer, "Order Completed", properties={"order_id": f"{prefix}-o1", "total": 25}),
    )

    found = await actions(infra, prefix, count=1, settle=2.0)
    assert [a.customer_key for a in found] == [abandoner]
    data = found[0].data
    assert data["rule"] == f"{prefix}-cart"
    assert data["rule_version"] == 1
    assert data["template"] == "cart"
    assert data["action_id"] == found[0].action_id
    assert data["customer"]["id"] == abandoner
    assert [p["product_id"] for p in data["context"]["cart"]["products"]] == ["p-mug"]
    assert data["context"]["trigger"]["event"] == "Product Added"
