"""Rejected input kept in PostgreSQL: every rejection ingest dead-letters is listed by
``GET /v1/rejected`` with its source, reason, every error and the body; it survives a
restart, a re-read record adds nothing, and it is deleted after the retention window."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from services.ingest.app import create_app
from services.ingest.rejected.recorder import prune_expired
from services.ingest.settings import IngestSettings
from services.ingest.storefront import run_storefront_consumer
from shared import topics
from shared.envelope import decode_dead_letter
from tests.ingest.conftest import Source
from tests.ingest.test_tracking_api import basic, track
from tests.support.kafka import collect
from tests.support.receiver import eventually
from tests.support.services import Infra, RunningService, settings_env, start_service


async def _rejected(service: RunningService, **params: Any) -> list[dict[str, Any]]:
    async with service.admin() as client:
        response = await client.get("/v1/rejected", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_http_rejections_are_listed_with_every_error_and_the_body(
    ingest: RunningService, source: Source
) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        single = await client.post("/v1/track", json={"event": "", "properties": []})
        batch = await client.post(
            "/v1/batch", json={"batch": [track("u-ok"), {"type": "track", "userId": "u-bad"}]}
        )
        broken = await client.post(
            "/v1/track", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert single.status_code == 400 and batch.status_code == 200 and broken.status_code == 400
    found = await _rejected(ingest, source=source.name)
    by_code = {(r["code"], r["index"]): r for r in found}
    assert set(by_code) == {
        ("invalid_message", None),
        ("invalid_message", 1),
        ("invalid_json", None),
    }
    first = by_code[("invalid_message", None)]
    assert first["origin"] == "http" and first["source"] == source.name
    assert first["reason"] == single.json()["message"]
    assert first["errors"] == [  # every problem, not only the first the sender was told
        "event must be a non-empty string, got ''",
        "properties must be an object, got a list",
    ]
    assert orjson.loads(first["body"]) == {"event": "", "properties": []}
    assert by_code[("invalid_json", None)]["body"] == "{not json"
    assert by_code[("invalid_message", 1)]["reason"] == "event is required"


async def test_rejected_input_pages_newest_first_and_filters_by_time(
    ingest: RunningService, source: Source
) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        for n in range(3):
            await client.post("/v1/track", json={"userId": f"u{n}"})
    first = await _rejected(ingest, source=source.name, limit=2)
    async with ingest.admin() as client:
        page = (await client.get("/v1/rejected", params={"source": source.name, "limit": 2})).json()
        rest = (
            await client.get(
                "/v1/rejected", params={"source": source.name, "cursor": page["next_cursor"]}
            )
        ).json()
        later = await client.get(
            "/v1/rejected",
            params={
                "source": source.name,
                "since": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            },
        )
        bad = await client.get("/v1/rejected", params={"cursor": "!!"})
    bodies = [orjson.loads(r["body"])["userId"] for r in [*page["items"], *rest["items"]]]
    assert bodies == ["u2", "u1", "u0"] and rest["next_cursor"] is None
    assert [r["id"] for r in first] == [r["id"] for r in page["items"]]
    assert later.json()["items"] == []
    assert bad.status_code == 400


async def test_rejected_input_needs_the_admin_token(ingest: RunningService) -> None:
    async with ingest.client() as client:
        assert (await client.get("/v1/rejected")).status_code == 401


async def test_rejected_input_survives_a_restart_and_a_reread_adds_nothing(infra: Infra) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:
        for value in (b"\x00not json", orjson.dumps({"type": "track", "userId": "u"})):
            await producer.send_and_wait(
                topics.STOREFRONT_EVENTS, value, key=b"k", headers=[("source", site.encode())]
            )
    finally:
        await producer.stop()
    settings = IngestSettings(**settings_env(infra, storefront_consumer=False))  # type: ignore[arg-type]
    for lifetime in range(2):  # two service lifetimes, each reading the records again
        app = create_app(settings)
        service = await start_service(app)
        try:
            stop = asyncio.Event()
            consume = asyncio.create_task(
                run_storefront_consumer(app.state.ingest, stop, group_id=f"t-{site}-{lifetime}")
            )
            await collect(
                infra.bootstrap,
                topics.DEAD_LETTERS,
                decode=decode_dead_letter,
                match=lambda d: d.source == site,
                count=2 * (lifetime + 1),
            )

            async def both(running: RunningService = service) -> list[dict[str, Any]] | None:
                found = await _rejected(running, source=site)
                return found if len(found) >= 2 else None

            found = await eventually(both, timeout=20)
            stop.set()
            await asyncio.wait_for(consume, 30)
        finally:
            await service.stop()
        assert len(found) == 2, found  # the second reading landed on the same rows
    assert {r["code"] for r in found} == {"invalid_json", "invalid_message"}
    assert all(r["origin"] == topics.STOREFRONT_EVENTS for r in found)
    assert "\ufffd" in next(r["body"] for r in found if r["code"] == "invalid_json")


async def test_rejected_input_is_deleted_after_the_retention_window(
    ingest: RunningService, source: Source
) -> None:
    async with ingest.client(headers=basic(source.key)) as client:
        await client.post("/v1/track", json={"userId": "old"})
    assert len(await _rejected(ingest, source=source.name)) == 1
    ctx = ingest.app.state.ingest
    await prune_expired(ctx.sessions, days=1)
    assert len(await _rejected(ingest, source=source.name)) == 1  # younger than a day
    async with ctx.sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE ingest.rejected SET rejected_at = now() - interval '2 days' "
                "WHERE source = :s"
            ),
            {"s": source.name},
        )
    await prune_expired(ctx.sessions, days=1)
    assert await _rejected(ingest, source=source.name) == []
