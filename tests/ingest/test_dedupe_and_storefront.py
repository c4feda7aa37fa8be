"""Dedupe that survives a restart, and the storefront.events consumer."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.ingest.storefront import run_storefront_consumer
from shared import topics
from shared.envelope import decode_dead_letter, decode_event
from tests.ingest.conftest import Source
from tests.ingest.test_tracking_api import basic, track
from tests.support.kafka import collect
from tests.support.services import Infra, settings_env, start_service


async def test_dedupe_survives_a_restart_of_ingest(infra: Infra, source: Source) -> None:
    message = track("u-restart")
    settings = IngestSettings(**settings_env(infra, storefront_consumer=False))  # type: ignore[arg-type]
    for _ in range(2):  # two separate service lifetimes
        service = await start_service(create_app(settings))
        try:
            async with service.client(headers=basic(source.key)) as client:
                assert (await client.post("/v1/track", json=message)).status_code == 200
        finally:
            await service.stop()
    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == source.name,
        count=1,
        settle=1.0,
    )
    assert len(events) == 1


async def test_poison_record_on_storefront_events_does_not_stall_good_ones(infra: Infra) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    headers = [("source", site.encode())]
    good_single = track("u-kafka-1")
    good_batch = {
        "batch": [
            track("u-kafka-2"),
            {"type": "identify", "userId": "u-kafka-3", "messageId": str(uuid.uuid4())},
        ]
    }
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:
        key = b"same-partition"  # all in one partition, poison first
        for value in (
            b"\x00not json",
            orjson.dumps({"type": "track"}),
            orjson.dumps(good_single),
            orjson.dumps(good_batch),
        ):
            await producer.send_and_wait(topics.STOREFRONT_EVENTS, value, key=key, headers=headers)
    finally:
        await producer.stop()

    settings = IngestSettings(**settings_env(infra, storefront_consumer=False))  # type: ignore[arg-type]
    app = create_app(settings)
    service = await start_service(app)
    try:
        stop = asyncio.Event()
        consume = asyncio.create_task(
            run_storefront_consumer(app.state.ingest, stop, group_id=f"test-{site}")
        )
        events = await collect(
            infra.bootstrap,
            topics.EVENTS,
            decode=decode_event,
            match=lambda e: e.source == site,
            count=3,
        )
        letters = await collect(
            infra.bootstrap,
            topics.DEAD_LETTERS,
            decode=decode_dead_letter,
            match=lambda d: d.source == site,
            count=2,
        )
        stop.set()
        await asyncio.wait_for(consume, 30)
    finally:
        await service.stop()
    assert sorted(e.customer_key for e in events) == ["u-kafka-1", "u-kafka-2", "u-kafka-3"]
    assert {d.code for d in letters} >= {"invalid_json"}
    assert all(d.origin == topics.STOREFRONT_EVENTS and d.offset is not None for d in letters)
