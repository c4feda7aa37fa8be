"""The Kafka producer every service uses: ``acks="all"``; idempotence is a setting.

Tansu (the embedded broker) does not support InitProducerId, so idempotence is off by
default; exactly-once effects come from our own ids and unique constraints instead.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer


def create_producer(
    bootstrap: str, *, client_id: str, enable_idempotence: bool = False
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=enable_idempotence,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=15_000,
    )


async def ping(producer: AIOKafkaProducer, *, timeout: float = 3.0) -> None:
    """Raise unless the cluster answers a metadata request in time."""
    async with asyncio.timeout(timeout):
        await producer.client.fetch_all_metadata()
