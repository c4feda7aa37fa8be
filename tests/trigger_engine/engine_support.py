"""Helpers of the engine integration tests: the running engine, events, rules, actions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from services.trigger_engine.app import create_app
from services.trigger_engine.settings import EngineSettings
from shared import topics
from shared.envelope import (
    ActionV1,
    ErasureV1,
    Event,
    EventV1,
    decode_action_topic,
    decode_plain_event,
)
from shared.ids import event_id
from shared.kafka.consumer import Decoded
from tests.support.kafka import collect
from tests.support.services import Infra, RunningService, settings_env, start_service

T = TypeVar("T")
SOURCE = "it-shop"


def now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """A trigger engine served in this event loop; ``restart`` stops it and starts another."""

    def __init__(self, infra: Infra, *, group: str, **overrides: Any) -> None:
        self.infra = infra
        self.settings_kwargs = settings_env(
            infra,
            consumer_group=group,
            consumer_max_records=500,
            timer_poll_seconds=0.1,
            outbox_poll_seconds=0.2,
            gauges_seconds=1.0,
            **overrides,
        )
        self.service: RunningService | None = None

    async def start(self) -> None:
        """Start, and return once the consumer has joined its group and folds events."""
        settings = EngineSettings(**self.settings_kwargs)
        self.service = await start_service(create_app(settings))
        probe = f"warmup-{uuid.uuid4().hex}"
        producer = AIOKafkaProducer(bootstrap_servers=self.infra.bootstrap, acks="all")
        await producer.start()
        try:
            await produce(producer, event(probe, "Warmed Up"))
        finally:
            await producer.stop()
        await eventually(lambda: self.customer(probe), timeout=60, what="the engine to consume")

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def admin(self) -> httpx.AsyncClient:
        assert self.service is not None, "engine not running"
        return self.service.admin()

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        async with self.admin() as client:
            response = await client.get(f"/v1/customers/{customer_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def customer_with_orders(self, customer_id: str, orders: int) -> dict[str, Any] | None:
        """The customer once ``orders`` orders of theirs are folded, else None (to poll)."""
        found = await self.customer(customer_id)
        return found if found is not None and found["metrics"]["orders"] == orders else None


class Rules:
    """Rules created by one test, deleted when it ends."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keys: list[str] = []

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.engine.admin() as client:
            response = await client.post("/v1/rules", json=body)
        assert response.status_code == 201, response.text
        self.keys.append(body["key"])
        created: dict[str, Any] = response.json()
        return created

    async def delete_all(self) -> None:
        if self.engine.service is None:
            return
        async with self.engine.admin() as client:
            for key in self.keys:
                await client.delete(f"/v1/rules/{key}")


def rule(prefix: str, name: str, **fields: Any) -> dict[str, Any]:
    """A rule that only this test's customers (keys starting with ``prefix``) can enter."""
    body: dict[str, Any] = {
        "key": f"{prefix}-{name}",
        "name": f"{name} ({prefix})",
        "trigger": {"type": "event", "event": "Product Added"},
        "steps": [{"wait": "PT1S"}, {"send": {"channel": "email", "template": name}}],
        "exit_when": [{"event": "Order Completed"}],
        "reentry": "P1D",
        **fields,
    }
    body["audience"] = [
        {"path": "profile.customer_key", "op": "contains", "value": prefix},
        *fields.get("audience", []),
    ]
    return body


def event(
    customer: str,
    name: str | None,
    *,
    at: datetime | None = None,
    call: str = "track",
    anonymous: bool = False,
    anonymous_id: str | None = None,
    previous_id: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
) -> EventV1:
    message_id = f"m-{uuid.uuid4().hex}"
    when = at or now()
    return EventV1(
        event_id=event_id(SOURCE, message_id),
        source=SOURCE,
        message_id=message_id,
        customer_key=customer,
        call=call,  # type: ignore[arg-type]
        event=name,
        user_id=None if anonymous else customer,
        anonymous_id=customer if anonymous else anonymous_id,
        previous_id=previous_id,
        properties=properties or {},
        traits=traits or {},
        timestamp=when,
        received_at=max(when, now()),
    )


def decoded(item: EventV1) -> Decoded[Event]:
    """``item`` as the engine's consumer hands it to its batch handler (partition 0)."""
    value = item.to_bytes()
    record = ConsumerRecord(
        topics.EVENTS, 0, 0, 0, 0, item.customer_key.encode(), value, None, 0, len(value), ()
    )
    return Decoded(record, decode_plain_event(value))


async def produce(producer: AIOKafkaProducer, *events: EventV1) -> None:
    """Produce in order (one customer's events keep their order: same key, same partition)."""
    for item in events:
        await producer.send_and_wait(topics.EVENTS, item.to_bytes(), key=item.customer_key.encode())


async def actions(
    infra: Infra,
    prefix: str,
    *,
    count: int,
    settle: float = 0.0,
    timeout: float = 30.0,
) -> list[ActionV1]:
    """Actions on clm.actions for this test's customers: ``count`` of them, then ``settle``
    more seconds to catch any that should not be there."""
    found = await collect(
        infra.bootstrap,
        topics.ACTIONS,
        decode=decode_action_topic,
        match=lambda r: isinstance(r, ActionV1) and r.customer_key.startswith(prefix),
        count=count,
        timeout=timeout,
        settle=settle,
    )
    return [a for a in found if isinstance(a, ActionV1)]


async def erasures(infra: Infra, key: str, *, timeout: float = 30.0) -> list[ErasureV1]:
    found = await collect(
        infra.bootstrap,
        topics.ACTIONS,
        decode=decode_action_topic,
        match=lambda r: isinstance(r, ErasureV1) and r.customer_key == key,
        count=1,
        timeout=timeout,
    )
    return [e for e in found if isinstance(e, ErasureV1)]


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail at ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def rule_stats(
    engine: Engine, key: str, ready: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    """``GET /v1/rules/{key}/stats`` once ``ready`` says so (reads lag the stream by up to a
    checkpoint interval: an action is published before its run record is written)."""

    async def probe() -> dict[str, Any] | None:
        async with engine.admin() as client:
            response = await client.get(f"/v1/rules/{key}/stats")
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats if ready(stats) else None

    return await eventually(probe, what=f"{key}'s stats")


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
