"""Two instances folding the two sides of a merge at the same moment lose nothing.

The anonymous shopper's events and the identify that merges them into the known customer
carry different Kafka keys, so two engine instances may handle them concurrently. Here two
batch transactions race on the real database (as two instances would) in both orders.
"""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from services.trigger_engine.consumer.handler import EventBatchHandler
from services.trigger_engine.context import EngineContext
from shared.envelope import EventV1
from shared.kafka.consumer import Decoded
from tests.trigger_engine.engine_support import Engine, event


def _retries() -> float:
    return REGISTRY.get_sample_value("clm_engine_batch_retries_total") or 0.0


def _decoded(item: EventV1) -> Decoded[EventV1]:
    value = item.to_bytes()
    record = ConsumerRecord(
        "clm.events", 0, 0, 0, 0, item.customer_key.encode(), value, None, 0, len(value), ()
    )
    return Decoded(record, item)


async def test_merge_racing_an_anonymous_event_keeps_the_whole_cart(
    engine: Engine, prefix: str
) -> None:
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    instance_a, instance_b = EventBatchHandler(ctx), EventBatchHandler(ctx)
    retries_before = _retries()
    for round_ in range(4):
        anonymous, user = f"{prefix}-anon{round_}", f"{prefix}-user{round_}"
        first = {"product_id": "p1", "price": 10}
        second = {"product_id": "p2", "price": 20}
        await instance_a(
            [_decoded(event(anonymous, "Product Added", anonymous=True, properties=first))]
        )
        added = _decoded(event(anonymous, "Product Added", anonymous=True, properties=second))
        identify = _decoded(
            event(user, None, call="identify", anonymous_id=anonymous, traits={"email": "x@y.z"})
        )
        if round_ % 2:
            await asyncio.gather(instance_a([added]), instance_b([identify]))
        else:
            await asyncio.gather(instance_b([identify]), instance_a([added]))

        merged = await engine.customer(user)
        assert merged is not None
        assert sorted(p["product_id"] for p in merged["cart"]["products"]) == ["p1", "p2"]
        assert merged["metrics"]["cart_adds"] == 2
        assert (await engine.customer(anonymous))["customer_key"] == user  # type: ignore[index]
    # The identify committed first at least once: the anonymous batch found its customer
    # merged away under its lock and was redone against the known customer.
    assert _retries() > retries_before
