"""The state cache never serves a state that is not the committed row.

Each engine instance keeps the states it wrote (see ``processing/cache.py``). Here two
batch handlers with separate caches (two instances) write the same customer in turn, and
an erasure removes it behind the cache's back: every batch must fold onto what the
database holds, not onto what its own cache remembers.
"""

from __future__ import annotations

import dataclasses

from services.trigger_engine.consumer.handler import EventBatchHandler
from services.trigger_engine.context import EngineContext
from services.trigger_engine.processing.cache import StateCache
from shared.envelope import Event
from shared.kafka.consumer import Decoded
from tests.trigger_engine.engine_support import Engine, decoded, event


def _added(customer: str, product: str) -> Decoded[Event]:
    properties = {"product_id": product, "price": 10}
    return decoded(event(customer, "Product Added", properties=properties))


async def _cart(engine: Engine, customer: str) -> list[str]:
    found = await engine.customer(customer)
    assert found is not None
    return sorted(p["product_id"] for p in found["cart"]["products"])


async def test_a_write_by_another_instance_is_not_overwritten_from_the_cache(
    engine: Engine, prefix: str
) -> None:
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    cache_a, cache_b = StateCache(), StateCache()
    instance_a = EventBatchHandler(dataclasses.replace(ctx, states=cache_a))
    instance_b = EventBatchHandler(dataclasses.replace(ctx, states=cache_b))
    shopper = f"{prefix}-shopper"

    await instance_a([_added(shopper, "p1")])
    assert len(cache_a) == 1
    await instance_b([_added(shopper, "p2")])  # the row changes behind cache_a's back
    await instance_a([_added(shopper, "p3")])

    assert await _cart(engine, shopper) == ["p1", "p2", "p3"]
    assert cache_a.misses >= 1  # the stale entry was refused and the row decoded

    await instance_a([_added(shopper, "p4")])  # now the cached state is the row: a hit
    assert cache_a.hits >= 1
    assert await _cart(engine, shopper) == ["p1", "p2", "p3", "p4"]


async def test_an_erased_customer_starts_afresh_despite_a_warm_cache(
    engine: Engine, prefix: str
) -> None:
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    cache = StateCache()
    instance = EventBatchHandler(dataclasses.replace(ctx, states=cache))
    shopper = f"{prefix}-shopper"
    await instance([_added(shopper, "p1")])
    assert len(cache) == 1

    async with engine.admin() as client:
        assert (await client.delete(f"/v1/customers/{shopper}")).status_code in (200, 202, 204)
    await instance([_added(shopper, "p2")])

    assert await _cart(engine, shopper) == ["p2"]
