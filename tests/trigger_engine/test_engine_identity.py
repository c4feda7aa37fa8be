"""Anonymous shoppers who identify: the cart, the run and later anonymous events follow."""

from __future__ import annotations

from datetime import datetime
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
WAIT = "PT8S"


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
            # The identify must be folded inside this wait (checked below): long enough for a
            # slow machine, and spent on the rest of the test rather than idly.
            steps=[{"wait": WAIT}, {"send": {"channel": "email", "template": "cart"}}],
        )
    )
    anonymous, user = f"{prefix}-anon", f"{prefix}-user"
    # Different Kafka keys: the two profiles live in different partitions.
    added = event(anonymous, "Product Added", anonymous=True, properties=MUG)
    await produce(producer, added)
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
    merged = await eventually(
        lambda: _merged_into(engine, anonymous, user),
        what="the anonymous id to resolve to the user",
    )
    # The run started while the shopper was anonymous, and is still waiting: it and its
    # pending send moved to the user.
    [run] = [r for r in merged["runs"] if r["status"] == "active"]
    assert run["rule"] == f"{prefix}-cart"
    assert datetime.fromisoformat(run["started_at"]) == added.timestamp
    assert [t["run_id"] for t in merged["timers"] if t["kind"] == "step"] == [run["run_id"]]
    assert anonymous in merged["anonymous_ids"]
    assert merged["stage"] == "engaged"

    # A later event under the anonymous id lands on the known customer.
    await produce(producer, event(anonymous, "Product Viewed", anonymous=True, properties=MUG))
    await eventually(
        lambda: _timeline_with(engine, user, "Product Viewed"), what="the anonymous view"
    )

    [sent] = await actions(infra, prefix, count=1, settle=1.0)
    assert sent.customer_key == user
    customer = sent.data["customer"]
    assert (customer["id"], customer["email"]) == (user, "shopper@example.com")
    assert [p["product_id"] for p in sent.data["context"]["cart"]["products"]] == ["p-mug"]

    timeline = await eventually(
        lambda: _timeline_with(engine, user, "Product Viewed", run="completed"),
        what="the run's completion on the timeline",
    )
    kinds = [item["type"] for item in timeline["items"]]
    assert {"event", "stage", "run", "action"} <= set(kinds)
    # The run started while the shopper was anonymous: its records moved with the merge.
    runs = [item["data"] for item in timeline["items"] if item["type"] == "run"]
    assert [(r["kind"], r["rule"]) for r in runs] == [
        ("started", f"{prefix}-cart"),
        ("completed", f"{prefix}-cart"),
    ]


async def _merged_into(engine: Engine, anonymous: str, user: str) -> dict[str, Any] | None:
    found = await engine.customer(anonymous)
    return found if found is not None and found["customer_key"] == user else None


async def _timeline_with(
    engine: Engine, customer: str, name: str, *, run: str | None = None
) -> dict[str, Any] | None:
    """The timeline once it has event ``name`` (and a run record of kind ``run``)."""
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    names = [i["data"].get("event") for i in body["items"] if i["type"] == "event"]
    kinds = [i["data"]["kind"] for i in body["items"] if i["type"] == "run"]
    return body if name in names and (run is None or run in kinds) else None
