"""Restarts: what an owner holds in memory survives it (its last checkpoint has it)."""

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


async def _waiting(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["timers"] else None


async def test_a_pending_timer_fires_after_the_engine_restarts(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(
            prefix,
            "cart",
            # Seen pending (well inside the wait) before the restart; the restart itself
            # takes about as long, so the wait costs the test little time.
            steps=[{"wait": "PT5S"}, {"send": {"channel": "email", "template": "cart"}}],
        )
    )
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    waiting = await eventually(lambda: _waiting(engine, shopper), what="the pending wait")
    assert [t["kind"] for t in waiting["timers"]] == ["step"]

    await engine.restart()

    found = await actions(infra, prefix, count=1, settle=1.0)
    assert [a.customer_key for a in found] == [shopper]
