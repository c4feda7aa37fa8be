"""Crashes and restarts: durable timers survive the engine, a replayed batch sends nothing new."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from services.trigger_engine.consumer.handler import EventBatchHandler, decode
from services.trigger_engine.context import EngineContext
from shared.envelope import Event
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerLoop
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


class Crash(Exception):
    """The process died after the database commit, before the Kafka offset commit."""


class CrashBeforeOffsetCommit(ConsumerLoop[Event]):
    async def _commit(self, records: Any) -> None:
        raise Crash


async def _assigned(infra: Infra, topic: str, group: str) -> AIOKafkaConsumer:
    """A consumer of ``topic``'s only partition that commits to ``group`` (no rebalances)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


async def test_a_batch_replayed_after_a_crash_before_the_offset_commit_sends_nothing_new(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    assert engine.service is not None
    ctx: EngineContext = engine.service.app.state.engine
    topic = f"it-replay-{prefix}"  # a topic of its own: only the loops below read it
    await ensure_topics(infra.bootstrap, names=(topic,), partitions=1)
    await rules.create(
        rule(prefix, "instant", steps=[{"send": {"channel": "email", "template": "instant"}}])
    )
    shopper = f"{prefix}-shopper"
    for item in (
        event(shopper, "Product Added", properties=MUG),
        event(shopper, "Product Viewed", properties=MUG),
    ):
        await producer.send_and_wait(topic, item.to_bytes(), key=shopper.encode())
    group = f"it-replay-{uuid.uuid4().hex[:8]}"

    def loop(consumer: AIOKafkaConsumer, kind: type[ConsumerLoop[Event]]) -> Any:
        return kind(
            consumer,
            group=group,
            decode=decode,
            handler=EventBatchHandler(ctx),
            dead_letters=ctx.dead_letters,
        )

    consumer = await _assigned(infra, topic, group)
    try:
        with pytest.raises(Crash):
            await loop(consumer, CrashBeforeOffsetCommit).run(asyncio.Event(), max_batches=1)
        assert await consumer.committed(TopicPartition(topic, 0)) is None
    finally:
        await consumer.stop()
    [first] = await actions(infra, prefix, count=1)

    consumer = await _assigned(infra, topic, group)  # the restarted process
    try:
        replay = loop(consumer, ConsumerLoop)
        replayed = await replay.run(asyncio.Event(), max_batches=1)
        assert await consumer.committed(TopicPartition(topic, 0)) == 2
    finally:
        await consumer.stop()

    assert replayed == 2  # the same two records, handled a second time
    found = await actions(infra, prefix, count=1, settle=1.5)
    assert [a.action_id for a in found] == [first.action_id]
    async with engine.admin() as client:
        stats = (await client.get(f"/v1/rules/{prefix}-instant/stats")).json()
    assert (stats["entered"], stats["sent"]) == (1, 1)
