"""Read what the system produced, polling with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

T = TypeVar("T")


async def collect(
    bootstrap: str,
    topic: str,
    *,
    decode: Callable[[bytes], T],
    match: Callable[[T], bool],
    count: int,
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[T]:
    """Read ``topic`` from the beginning until ``count`` matching records arrived (then keep
    reading ``settle`` more seconds to catch extras), or fail at ``timeout``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline_wait = asyncio.get_running_loop().time() + 10
        while not partitions:
            if asyncio.get_running_loop().time() > deadline_wait:
                raise AssertionError(f"topic {topic} has no partitions")
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[T] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle_until: float | None = None
        while True:
            now = loop.time()
            if settle_until is not None and now >= settle_until:
                return found
            if now >= deadline:
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"expected {count} matching records on {topic}, found {len(found)} "
                    f"in {timeout}s"
                )
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        value = decode(record.value)
                    except ValueError:
                        continue  # another test's record of another shape
                    if match(value):
                        found.append(value)
            if len(found) >= count and settle_until is None:
                if settle <= 0:
                    return found
                settle_until = loop.time() + settle
    finally:
        await consumer.stop()
