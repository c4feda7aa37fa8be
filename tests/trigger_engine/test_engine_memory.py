"""States live in the owner's memory, bounded: the least recently used clean ones are
dropped and read back from PostgreSQL when their customer comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.trigger_engine.context import EngineContext
from shared import topics
from tests.support.services import Infra
from tests.trigger_engine.engine_support import Engine, event, eventually, produce

MUG = {"product_id": "p-mug", "price": 25}


@pytest.fixture
def tiny_memory(engine: Engine) -> Iterator[EngineContext]:
    """The engine keeps about one state per partition while the test runs."""
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    kept = ctx.settings.state_cache_size
    ctx.settings.state_cache_size = 8
    yield ctx
    ctx.settings.state_cache_size = kept


async def _adds(engine: Engine, customer: str, adds: int) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["metrics"]["cart_adds"] == adds else None


async def test_customers_dropped_from_memory_come_back_whole(
    engine: Engine, producer: AIOKafkaProducer, prefix: str, tiny_memory: EngineContext
) -> None:
    customers = [f"{prefix}-c{n}" for n in range(24)]  # three per partition, on average
    for round_ in range(1, 4):
        await produce(
            producer,
            *[
                event(c, "Product Added", properties={"product_id": f"p{round_}", "price": 5})
                for c in customers
            ],
        )
        for customer in customers:
            await eventually(
                lambda c=customer, n=round_: _adds(engine, c, n), what=f"{customer}'s add"
            )
    held = REGISTRY.get_sample_value("clm_engine_states_in_memory") or 0
    assert held <= 16  # one per partition, and what the last checkpoint kept dirty
    for customer in customers:
        found = await engine.customer(customer)
        assert found is not None
        assert sorted(p["product_id"] for p in found["cart"]["products"]) == ["p1", "p2", "p3"]


async def test_an_owner_stops_folding_while_a_slow_checkpoint_holds_too_many_changes(
    engine: Engine,
    infra: Infra,
    producer: AIOKafkaProducer,
    prefix: str,
    tiny_memory: EngineContext,
) -> None:
    """Changed states stay in memory until a checkpoint has them. While one is stuck in
    PostgreSQL, the owner folds on only until a quarter of the memory bound (here 2 states)
    has changed, then waits for it; nothing is lost once it is written."""
    waits = REGISTRY.get_sample_value("clm_engine_checkpoint_waits_total") or 0
    blocker = await asyncpg.connect(infra.database_url.replace("+asyncpg", ""))
    customers = [f"{prefix}-w{n}" for n in range(12)]
    try:
        transaction = blocker.transaction()
        await transaction.start()
        # The checkpoint's fence updates these rows: the next checkpoint waits for the lock.
        await blocker.execute(
            "SELECT 1 FROM engine.partitions WHERE topic = $1 FOR UPDATE", topics.EVENTS
        )
        await eventually(lambda: _checkpoint_waiting(blocker), what="a checkpoint on the lock")
        await produce(producer, *[event(c, "Product Viewed", properties=MUG) for c in customers])
        await eventually(
            lambda: _more(REGISTRY.get_sample_value("clm_engine_checkpoint_waits_total"), waits),
            what="the owner waiting for its checkpoint",
        )
        await transaction.rollback()
    finally:
        await blocker.close()
    for customer in customers:
        await eventually(lambda c=customer: engine.customer(c), what=f"{customer} stored")


async def _checkpoint_waiting(connection: asyncpg.Connection) -> bool | None:
    waiting = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'SELECT * FROM engine.checkpoint(%'"
    )
    return True if waiting else None


async def _more(value: float | None, than: float) -> bool | None:
    return True if (value or 0) > than else None
