"""Bad input is a 400 (or a batch's `rejected` entry) with a message saying what to fix, and a
dead letter; a message without messageId is never a duplicate."""

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
from tests.support.services import Infra, RunningService, settings_env, start_service

DEEP = b'{"a":' * 500 + b"{}" + b"}" * 500


async def test_two_identical_calls_without_message_id_are_two_events(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    body = {"userId": "u-twice", "event": "Product Viewed", "properties": {"sku": "s-1"}}
    async with ingest.client(headers=basic(source.key)) as client:
        for _ in range(2):
            response = await client.post("/v1/track", json=body)
            assert response.json() == {"success": True}
    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == source.name,
        count=2,
    )
    assert len({e.message_id for e in events}) == 2
    assert all(uuid.UUID(e.message_id).version == 4 for e in events)


async def test_properties_nested_500_deep_are_a_400_and_a_dead_letter(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    body = b'{"userId": "u-deep", "event": "Deep", "properties": ' + DEEP + b"}"
    headers = {**basic(source.key), "content-type": "application/json"}
    async with ingest.client(headers=headers) as client:
        response = await client.post("/v1/track", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_message"
    assert "nested more than 32 levels deep" in response.json()["message"]
    [letter] = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: d.source == source.name,
        count=1,
    )
    assert letter.payload == body.decode()
    assert "nested" in letter.reason


async def test_a_batch_member_too_deep_to_encode_is_rejected_alone(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    good = track("u-good")
    body = (
        b'{"batch": ['
        + orjson.dumps(good)
        + b', {"type": "track", "userId": "u-deep", "event": "D", "properties": '
        + DEEP
        + b"}]}"
    )
    headers = {**basic(source.key), "content-type": "application/json"}
    async with ingest.client(headers=headers) as client:
        response = await client.post("/v1/batch", content=body)
    assert response.status_code == 200, response.text
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 1 and "nested" in rejected["message"]
    [letter] = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: d.source == source.name,
        count=1,
    )
    # The member cannot be encoded again (too deep): the letter keeps the whole request.
    assert (letter.index, letter.payload) == (1, body.decode())


async def test_a_nul_in_an_id_and_an_overflowing_total_are_400s(
    ingest: RunningService, source: Source
) -> None:
    headers = {**basic(source.key), "content-type": "application/json"}
    async with ingest.client(headers=headers) as client:
        nul = await client.post("/v1/identify", json={"userId": "user\x00-42"})
        total = await client.post(
            "/v1/track",
            content=b'{"userId": "u", "event": "Order Completed",'
            b' "properties": {"order_id": "o-1", "total": 18446744073709551617}}',
        )
        long_id = await client.post("/v1/identify", json={"userId": "u" * 10_240})
        year = await client.post(
            "/v1/track", json={"userId": "u", "event": "E", "timestamp": "9999-01-01T00:00:00Z"}
        )
    assert nul.status_code == 400
    assert nul.json()["message"] == "userId contains a NUL character (\\u0000); remove it"
    assert total.status_code == 400
    assert total.json()["message"].startswith("properties.total must be a finite number")
    assert long_id.status_code == 400
    assert long_id.json()["message"] == "userId must be at most 100 characters, got 10240"
    assert year.status_code == 400
    assert "out of range" in year.json()["message"]


async def test_storefront_records_without_message_id_are_events_each_and_replay_safe(
    infra: Infra,
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    value = orjson.dumps({"type": "track", "userId": "u-rec", "event": "Product Viewed"})
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(2):  # two identical records: two events
            await producer.send_and_wait(
                topics.STOREFRONT_EVENTS, value, key=b"k", headers=[("source", site.encode())]
            )
    finally:
        await producer.stop()
    settings = IngestSettings(**settings_env(infra, storefront_consumer=False))  # type: ignore[arg-type]
    app = create_app(settings)
    service = await start_service(app)
    loop = asyncio.get_running_loop()
    try:
        # The second group reads the same records again, as after a crash before commit.
        for group in (f"test-{site}-1", f"test-{site}-2"):
            handled, deadline = 0, loop.time() + 60
            while handled < 2:  # a slow group join may idle out first: go on from its commit
                assert loop.time() < deadline, f"{group} handled {handled} of 2 records"
                handled += await run_storefront_consumer(
                    app.state.ingest, asyncio.Event(), group_id=group, idle_timeout=2
                )
    finally:
        await service.stop()
    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == site,
        count=2,
        settle=1.0,
    )
    assert len(events) == 2
    assert len({e.message_id for e in events}) == 2
