"""Anonymous shoppers who identify: the cart, the run and later anonymous events follow."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    event,
    eventually,
    produce,
    rule,
)

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25}


async def _with_cart(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["cart"]["products"] else None


async def test_anonymous_cart_carries_over_when_the_shopper_identifies(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(
            prefix,
            "cart",
            steps=[{"wait": "PT3S"}, {"send": {"channel": "email", "template": "cart"}}],
        )
    )
    anonymous, user = f"{prefix}-anon", f"{prefix}-user"
    # Different Kafka keys: the two profiles live in different partitions.
    await produce(producer, event(anonymous, "Product Added", anonymous=True, properties=MUG))
    await eventually(lambda: _with_cart(engine, anonymous), what="the anonymous cart")

    await produce(
        producer,
        event(
            user,
            None,
            call="identify",
            anonymous_id=anonymous,
            traits={"email": "shopper@example.com", "first_name": "Ada"},
        ),
    )

    [sent] = await actions(infra, prefix, count=1, settle=1.0)
    assert sent.customer_key == user
    customer = sent.data["customer"]
    assert (customer["id"], customer["email"]) == (user, "shopper@example.com")
    assert [p["product_id"] for p in sent.data["context"]["cart"]["products"]] == ["p-mug"]

    merged = await engine.customer(anonymous)  # the anonymous id now resolves to the user
    assert merged is not None
    assert merged["customer_key"] == user
    assert anonymous in merged["anonymous_ids"]
    assert merged["stage"] == "engaged"

    # A later event under the anonymous id lands on the known customer.
    await produce(producer, event(anonymous, "Product Viewed", anonymous=True, properties=MUG))
    timeline = await eventually(
        lambda: _timeline_with(engine, user, "Product Viewed"), what="the anonymous view"
    )
    kinds = [item["type"] for item in timeline["items"]]
    assert {"event", "stage", "run", "action"} <= set(kinds)
    # The run started while the shopper was anonymous: its records moved with the merge.
    runs = [item["data"] for item in timeline["items"] if item["type"] == "run"]
    assert [(r["kind"], r["rule"]) for r in runs] == [
        ("started", f"{prefix}-cart"),
        ("completed", f"{prefix}-cart"),
    ]


async def _timeline_with(engine: Engine, customer: str, name: str) -> dict[str, Any] | None:
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    names = [i["data"].get("event") for i in body["items"] if i["type"] == "event"]
    return body if name in names else None
