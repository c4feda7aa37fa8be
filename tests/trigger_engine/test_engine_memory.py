"""States live in the owner's memory, bounded: the least recently used clean ones are
dropped and read back from PostgreSQL when their customer comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.trigger_engine.context import EngineContext
from tests.trigger_engine.engine_support import Engine, event, eventually, produce


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
