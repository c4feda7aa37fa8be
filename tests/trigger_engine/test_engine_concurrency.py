"""Two instances folding the two sides of a merge at the same moment lose nothing.

The anonymous shopper's events and the identify that merges them into the known customer
carry different Kafka keys, so two engine instances may handle them concurrently. Here two
batch transactions race on the real database (as two instances would). The order is forced:
a third transaction holds the anonymous customer's row lock while both batches queue behind
it (PostgreSQL grants a row lock to its waiters in arrival order), then lets them go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.consumer.handler import EventBatchHandler
from services.trigger_engine.context import EngineContext
from tests.trigger_engine.engine_support import Engine, decoded, event, eventually

_WAITING_BEHIND = text(
    "SELECT pid FROM pg_stat_activity "
    "WHERE pg_blocking_pids(pid) && CAST(:blockers AS int[]) ORDER BY pid"
)


def _retries() -> float:
    return REGISTRY.get_sample_value("clm_engine_batch_retries_total") or 0.0


async def _queue_behind(
    blocker: AsyncSession, waiting: list[int], batch: Awaitable[None]
) -> asyncio.Task[None]:
    """Start ``batch`` and return once it waits for a lock held by the blocker or a waiter."""
    task = asyncio.ensure_future(batch)
    blockers = [await blocker.scalar(text("SELECT pg_backend_pid()")), *waiting]

    async def queued() -> int | None:
        if task.done():
            task.result()  # raise what it raised; a batch that did not wait is a test error
            raise AssertionError("the batch finished without waiting for the lock")
        pids = (await blocker.scalars(_WAITING_BEHIND, {"blockers": blockers})).all()
        new = [pid for pid in pids if pid not in waiting]
        return new[0] if new else None

    waiting.append(await eventually(queued, what="the batch to wait for the row lock"))
    return task


@pytest.mark.parametrize("first", ["identify", "added"])
async def test_merge_racing_an_anonymous_event_keeps_the_whole_cart(
    engine: Engine, prefix: str, first: str
) -> None:
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    instance_a, instance_b = EventBatchHandler(ctx), EventBatchHandler(ctx)
    anonymous, user = f"{prefix}-anon", f"{prefix}-user"
    p1 = {"product_id": "p1", "price": 10}
    p2 = {"product_id": "p2", "price": 20}
    await instance_a([decoded(event(anonymous, "Product Added", anonymous=True, properties=p1))])
    added = decoded(event(anonymous, "Product Added", anonymous=True, properties=p2))
    identify = decoded(
        event(user, None, call="identify", anonymous_id=anonymous, traits={"email": "x@y.z"})
    )
    batches = {"identify": lambda: instance_b([identify]), "added": lambda: instance_a([added])}
    second = "added" if first == "identify" else "identify"
    retries_before = _retries()

    async with ctx.sessions() as blocker, blocker.begin():
        locked = await blocker.scalar(
            text("SELECT 1 FROM engine.customers WHERE customer_key = :k FOR UPDATE"),
            {"k": anonymous},
        )
        assert locked == 1
        waiting: list[int] = []
        tasks = [
            await _queue_behind(blocker, waiting, batches[first]()),
            await _queue_behind(blocker, waiting, batches[second]()),
        ]
    await asyncio.gather(*tasks)

    merged = await engine.customer(user)
    assert merged is not None
    assert sorted(p["product_id"] for p in merged["cart"]["products"]) == ["p1", "p2"]
    assert merged["metrics"]["cart_adds"] == 2
    assert (await engine.customer(anonymous))["customer_key"] == user  # type: ignore[index]
    if first == "identify":
        # The merge committed while the anonymous batch waited: it found its customer
        # merged away under the lock and was redone against the known customer.
        assert _retries() > retries_before
    else:
        assert _retries() == retries_before
