"""Helpers of the messenger tests: a stand-in provider, settings, actions on clm.actions.

The receiver is one small HTTP server on 127.0.0.1 serving many hooks (``/hooks/<name>``),
each with its own ``whsec_`` secret and a script of answers (status, headers, delay); every
request is verified with the official ``standardwebhooks`` package. Each test makes its own
hooks, destinations, customers and consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.messenger.settings import MessengerSettings
from shared import topics
from shared.envelope import ActionV1, ErasureV1
from tests.support.services import Infra, RunningService, settings_env

T = TypeVar("T")

#: Fast retries for tests: attempts at 0, +0.2 s, +0.4 s (± jitter).
FAST_SCHEDULE = [0, 0.2, 0.4]
#: One consumer group for the session's messengers (one runs at a time): each resumes where
#: the previous one committed, so clm.actions is read once, not once per test.
TEST_GROUP = f"test-messenger-{uuid.uuid4().hex[:8]}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


# --- the stand-in provider ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Hit:
    headers: dict[str, str]
    raw: bytes
    verified: bool
    status: int
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def body(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def action_id(self) -> str:
        return str(self.body["data"]["action_id"])


@dataclass
class Hook:
    name: str
    url: str
    secret: str
    script: deque[Reply] = field(default_factory=deque)
    hits: list[Hit] = field(default_factory=list)

    def respond(self, *replies: Reply | int) -> None:
        """Answer the next requests so (then 200)."""
        self.script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def for_action(self, action_id: str) -> list[Hit]:
        return [h for h in self.hits if h.webhook_id == action_id]

    def delivered(self, action_id: str) -> list[Hit]:
        return [h for h in self.for_action(action_id) if 200 <= h.status < 300]


class Receiver:
    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.service: RunningService | None = None

    def hook(self, *replies: Reply | int, path: str = "hooks") -> Hook:
        assert self.service is not None
        name = uuid.uuid4().hex[:12]
        hook = Hook(name, f"{self.service.url}/{path}/{name}", new_secret())
        hook.respond(*replies)
        self.hooks[name] = hook
        return hook

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{name}")
        async def receive(name: str, request: Request) -> Response:
            hook = self.hooks.get(name)
            if hook is None:
                return Response(status_code=404)
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                Webhook(hook.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            reply = hook.script.popleft() if hook.script else Reply()
            status = reply.status if verified else 401
            hook.hits.append(Hit(headers, raw, verified, status, time.monotonic()))
            if reply.delay:
                await asyncio.sleep(reply.delay)  # a slow provider
            return Response(status_code=status, headers=reply.headers, content=b"ok")

        @app.post("/moved/{name}")
        async def moved(name: str) -> Response:
            return Response(status_code=302, headers={"location": f"/hooks/{name}"})

        return app


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


async def produce(infra: Infra, *records: ActionV1 | ErasureV1) -> None:
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
