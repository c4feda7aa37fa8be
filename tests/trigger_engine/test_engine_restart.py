"""Restarts: what an owner holds in memory survives it (its last checkpoint has it)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.trigger_engine.stream.handoff import partition_of
from services.trigger_engine.stream.store import asyncpg_url
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


async def test_customers_stored_before_rows_had_a_partition_are_adopted(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    """A customer row as migration 0007 leaves it (no partition, no timer index): its new
    owner adopts it, and its timer fires."""
    await rules.create(
        rule(
            prefix,
            "cart",
            steps=[{"wait": "PT5S"}, {"send": {"channel": "email", "template": "cart"}}],
        )
    )
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    await eventually(lambda: _waiting(engine, shopper), what="the pending wait")

    await engine.stop()
    connection = await asyncpg.connect(asyncpg_url(infra.database_url))
    try:
        await connection.execute(
            "UPDATE engine.customers SET partition = NULL, next_release_at = NULL "
            "WHERE customer_key = $1",
            shopper,
        )
        await engine.start()
        found = await actions(infra, prefix, count=1, settle=1.0)
        assert [a.customer_key for a in found] == [shopper]
        partitions = await connection.fetchval(
            "SELECT count(*) FROM engine.partitions WHERE topic = 'clm.events'"
        )
        stored = await connection.fetchval(
            "SELECT partition FROM engine.customers WHERE customer_key = $1", shopper
        )
        assert stored == partition_of(shopper, partitions)
    finally:
        await connection.close()
