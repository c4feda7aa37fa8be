"""Every error path of the Tracking API, and the promises of a 200."""

from __future__ import annotations

import asyncio
import base64
import gzip
import uuid

import orjson
import pytest

from services.ingest.api.tracking import _capacity
from services.ingest.settings import IngestSettings
from shared import topics
from shared.envelope import decode_dead_letter, decode_event
from shared.errors import Overloaded
from tests.ingest.conftest import Source
from tests.support.kafka import collect
from tests.support.services import Infra, RunningService


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(user: str, event: str = "Product Viewed", **extra: object) -> dict[str, object]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "messageId": str(uuid.uuid4()),
        "properties": {"product_id": "p-1"},
        **extra,
    }


async def test_missing_write_key_is_401(ingest: RunningService) -> None:
    async with ingest.client() as client:
        r = await client.post("/v1/track", json=track("u1"))
    assert r.status_code == 401
    assert r.json()["code"] == "missing_write_key"
    assert "write key" in r.json()["message"]


async def test_unknown_write_key_is_401(ingest: RunningService) -> None:
    async with ingest.client(headers=basic("wk_nope")) as client:
        r = await client.post("/v1/track", json=track("u1"))
    assert r.status_code == 401
    assert r.json() == {"code": "invalid_write_key", "message": "unknown or revoked write key"}


async def test_revoked_write_key_is_refused(ingest: RunningService, source: Source) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        assert (await client.post("/v1/track", json=track("u1"))).status_code == 200
        async with ingest.admin() as admin:
            assert (await admin.delete(f"/v1/write-keys/{source.id}")).status_code == 204
            assert (await admin.delete(f"/v1/write-keys/{source.id}")).status_code == 404
            listed = (await admin.get("/v1/write-keys")).json()["items"]
        assert source.id not in {k["id"] for k in listed}
        assert (await client.post("/v1/track", json=track("u1"))).status_code == 401


async def test_write_keys_need_the_admin_token(ingest: RunningService) -> None:
    async with ingest.client() as client:
        r = await client.post("/v1/write-keys", json={"source": "x"})
        assert r.status_code == 401
        r = await client.post(
            "/v1/write-keys", json={"source": "x"}, headers={"Authorization": "Bearer wrong"}
        )
        assert r.status_code == 401
    async with ingest.admin() as admin:
        r = await admin.post("/v1/write-keys", json={"source": "has spaces"})
    assert r.status_code == 422
    assert "source" in r.json()["message"]


async def test_write_key_is_stored_hashed(infra: Infra, source: Source) -> None:
    import asyncpg

    conn = await asyncpg.connect(infra.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT key_hash, key_prefix FROM ingest.write_keys WHERE id = $1", uuid.UUID(source.id)
        )
    finally:
        await conn.close()
    assert row is not None
    assert source.key not in row["key_hash"]
    assert source.key.startswith(row["key_prefix"])


async def test_write_key_in_body_is_accepted(ingest: RunningService, source: Source) -> None:
    async with ingest.client() as client:
        r = await client.post("/v1/identify", json={"userId": "u1", "writeKey": source.key})
    assert r.status_code == 200
    assert r.json() == {"success": True}


async def test_malformed_json_is_400_and_dead_lettered(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        r = await client.post(
            "/v1/track", content=b'{"userId": "u1", ', headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    assert r.json()["code"] == "bad_request"
    assert "malformed JSON" in r.json()["message"]
    letters = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: d.source == source.name,
        count=1,
    )
    assert letters[0].payload == '{"userId": "u1", '


async def test_invalid_message_is_400_with_the_field(
    ingest: RunningService, source: Source
) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        r = await client.post("/v1/track", json={"event": "Product Viewed"})
        assert r.status_code == 400
        assert "userId or anonymousId" in r.json()["message"]
        r = await client.post("/v1/track", json={"userId": "u1"})
        assert r.status_code == 400
        assert "event" in r.json()["message"]


async def test_wrong_content_type_is_415(ingest: RunningService, source: Source) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        r = await client.post(
            "/v1/track",
            content=b"userId=u1",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 415
    assert "application/json" in r.json()["message"]


async def test_message_over_32kb_is_413(ingest: RunningService, source: Source) -> None:
    big = track("u1", properties={"blob": "x" * (33 * 1024)})
    async with ingest.client(headers=basic(source.key)) as client:
        r = await client.post("/v1/track", json=big)
    assert r.status_code == 413
    assert "32 KB" in r.json()["message"]


async def test_request_over_500kb_is_refused_from_its_content_length(
    ingest: RunningService, source: Source
) -> None:
    """The server answers 413 from the headers alone, without waiting for the body."""
    host, port = ingest.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = basic(source.key)["Authorization"]
    writer.write(
        (
            "POST /v1/batch HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {600 * 1024}\r\n\r\n"
            '{"batch": ['
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)  # the rest never comes
    writer.close()
    assert status_line.split()[1] == b"413"


async def test_chunked_body_over_500kb_is_413(ingest: RunningService, source: Source) -> None:
    async def body() -> object:
        for _ in range(600):
            yield b" " * 1024

    async with ingest.client(
        headers={**basic(source.key), "content-type": "application/json"}
    ) as c:
        r = await c.post("/v1/batch", content=body())
    assert r.status_code == 413


async def test_gzip_bomb_is_413(ingest: RunningService, source: Source) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * (2 * 1024 * 1024) + b"]}")
    headers = {**basic(source.key), "content-type": "application/json", "content-encoding": "gzip"}
    async with ingest.client(headers=headers) as client:
        r = await client.post("/v1/batch", content=bomb)
    assert r.status_code == 413
    assert "uncompressed" in r.json()["message"]


async def test_gzip_batch_with_some_invalid_messages(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    good = [
        track("u-good-1"),
        track("u-good-2", event="Order Completed", properties={"order_id": "o1", "total": 30}),
    ]
    bad_order = track("u-bad", event="Order Completed", properties={"total": 10})  # no order_id
    batch = {"batch": [good[0], {"type": "track", "event": "x"}, good[1], bad_order, "nope"]}
    headers = {**basic(source.key), "content-type": "application/json", "content-encoding": "gzip"}
    async with ingest.client(headers=headers) as client:
        r = await client.post("/v1/batch", content=gzip.compress(orjson.dumps(batch)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert [x["index"] for x in body["rejected"]] == [1, 3, 4]
    assert "order_id" in body["rejected"][1]["message"]

    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == source.name,
        count=2,
        settle=0.5,
    )
    assert sorted(e.message_id for e in events) == sorted(str(m["messageId"]) for m in good)
    letters = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: d.source == source.name,
        count=3,
    )
    assert sorted(d.index or 0 for d in letters) == [1, 3, 4]
    assert all(d.reason for d in letters)


async def test_duplicate_message_id_is_acknowledged_once(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    message = track("u-dup")
    async with ingest.client(headers=basic(source.key)) as client:
        for _ in range(3):
            assert (await client.post("/v1/track", json=message)).status_code == 200
        batch = {"batch": [message, message]}
        assert (await client.post("/v1/batch", json=batch)).status_code == 200
    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == source.name,
        count=1,
        settle=1.0,
    )
    assert len(events) == 1


async def test_overload_answers_429_with_retry_after() -> None:
    class Ctx:
        settings = IngestSettings(max_inflight_requests=1, retry_after_seconds=3)
        inflight = 1

    with pytest.raises(Overloaded) as raised:
        async with _capacity(Ctx()):  # type: ignore[arg-type]
            pass
    assert raised.value.status_code == 429
    assert raised.value.headers == {"Retry-After": "3"}
