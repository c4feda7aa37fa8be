"""Helpers of the messenger tests: settings, actions on clm.actions, destinations.

The stand-in provider is ``tests.support.receiver``. Each test makes its own hooks,
destinations and customers, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer

from services.messenger.settings import MessengerSettings
from shared import topics
from shared.envelope import ActionCancelV1, ActionV1, ErasureV1
from tests.support.receiver import Hook, eventually
from tests.support.services import Infra, RunningService, settings_env

T = TypeVar("T")

#: Fast retries for tests: attempts at 0, +0.2 s, +0.4 s (± jitter).
FAST_SCHEDULE = [0, 0.2, 0.4]
#: One consumer group for the session's messengers (one runs at a time): each resumes where
#: the previous one committed, so clm.actions is read once, not once per test.
TEST_GROUP = f"test-messenger-{uuid.uuid4().hex[:8]}"


# --- messengers ------------------------------------------------------------------------------


def messenger_settings(infra: Infra, **overrides: Any) -> MessengerSettings:
    values: dict[str, Any] = {
        "allow_private_destinations": True,
        "retry_schedule": FAST_SCHEDULE,
        "dispatch_poll_seconds": 0.2,
        "stats_interval_seconds": 0.3,
        "consumer_group": TEST_GROUP,
        **overrides,
    }
    return MessengerSettings(**settings_env(infra, **values))  # type: ignore[arg-type]


MessengerFactory = Callable[..., Awaitable[RunningService]]


# --- actions ---------------------------------------------------------------------------------


def customer_id(prefix: str = "cust") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_action(
    customer: str,
    *,
    channel: str = "email",
    destination: str | None = None,
    template: str = "cart_reminder",
    email: str | None = None,
    phone: str | None = None,
    traits: dict[str, Any] | None = None,
) -> ActionV1:
    action_id = f"act_{uuid.uuid4().hex}"
    return ActionV1(
        action_id=action_id,
        customer_key=customer,
        channel=channel,
        destination=destination,
        data={
            "action_id": action_id,
            "rule": "cart-abandon",
            "rule_version": 1,
            "step": 1,
            "channel": channel,
            "template": template,
            "customer": {
                "id": customer,
                "email": email,
                "phone": phone,
                "traits": traits or {},
                "stage": "prospect",
            },
            "context": {
                "cart": {"products": [{"product_id": "sku-1", "name": "Mug", "price": 12.5}]},
                "offer": None,
                "trigger": {"event": "Product Added", "message_id": str(uuid.uuid4())},
            },
        },
        created_at=datetime.now(UTC),
    )


async def produce(infra: Infra, *records: ActionV1 | ActionCancelV1 | ErasureV1) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topics.ACTIONS, record.to_bytes(), key=record.customer_key.encode()
            )
    finally:
        await producer.stop()


# --- the ops API -----------------------------------------------------------------------------


async def create_destination(service: RunningService, hook: Hook, **fields: Any) -> dict[str, Any]:
    body = {
        "channel": "email",
        "url": hook.url,
        "secret": hook.secret,
        "rate_limit_per_second": 100,
        "default": False,
        **fields,
    }
    async with service.admin() as client:
        response = await client.post("/v1/destinations", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def delivery_of(client: httpx.AsyncClient, action_id: str) -> dict[str, Any] | None:
    response = await client.get("/v1/deliveries", params={"action_id": action_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items[0] if items else None


async def wait_delivery(
    service: RunningService, action_id: str, *statuses: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll until the action's delivery is in one of ``statuses``."""
    async with service.admin() as client:

        async def check() -> dict[str, Any] | None:
            found = await delivery_of(client, action_id)
            return found if found is not None and found["status"] in statuses else None

        return await eventually(check, timeout=timeout)
